import torch

from model.network import Net, NetConfig, count_parameters


def test_forward_shapes() -> None:
    net = Net()
    x = torch.zeros(5, 1, 28, 28)
    x1, x2 = net.features(x)
    assert x1.shape == (5, 16, 14, 14)
    assert x2.shape == (5, 36, 7, 7)
    assert net(x).shape == (5, 10)


def test_layer_shapes_match_the_tutorial() -> None:
    net = Net()
    assert net.conv1.weight.shape == (16, 1, 5, 5)
    assert net.conv2.weight.shape == (36, 16, 5, 5)
    assert net.fc1.weight.shape == (128, 1764)
    assert net.fc2.weight.shape == (10, 128)
    # 16*25+16 + 36*16*25+36 + 1764*128+128 + 128*10+10
    assert count_parameters(net) == 416 + 14436 + 225920 + 1290 == 242062


def test_config_round_trips_through_a_dict() -> None:
    config = NetConfig(fc_size=64)
    assert NetConfig(**config.to_dict()) == config
    assert Net(config)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
