import pytest
import torch

from model.checkpoint import LoadedModel
from model.contract import to_tensor
from model.data import MnistSplit
from model.network import Net, NetConfig, count_parameters, inference_forward, max_pool_2x2


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


@pytest.mark.parametrize("n", [1, 3, 4, 64])  # both ways of pooling (below 4 images and from 4 on)
def test_inference_forward_answers_as_the_eager_network(
    shipped_model: LoadedModel, mnist_test: MnistSplit, n: int
) -> None:
    x = to_tensor(mnist_test.images[:n].float() / 255)
    fast = inference_forward(shipped_model.net)
    with torch.inference_mode():
        eager, optimised = shipped_model.net(x), fast(x)
    assert shipped_model.net.conv2.weight.is_contiguous()  # the loaded network is left as it was (NCHW)
    assert torch.allclose(optimised, eager, atol=1e-5)
    assert torch.equal(optimised.argmax(1), eager.argmax(1))


@pytest.mark.parametrize("shape", [(1, 16, 28, 28), (5, 16, 28, 28), (64, 36, 14, 14), (6, 3, 7, 9)])
def test_max_pool_2x2_is_max_pool2d_exactly(shape: tuple[int, int, int, int]) -> None:
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))
