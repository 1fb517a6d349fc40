"""The digit classifier, by concept.

- `model.network`, `model.contract`, `model.checkpoint`, `model.refusal`, `model.explain`: the
  tutorial CNN, the 28x28 input it reads, the checkpoint file that carries it (with its
  temperature and refusal thresholds), and what it looked at. The service loads these.
- `model.imaging`: an upload turned into the network's input (decode, grey level, ink, a sheet in
  a photo, one digit or a row of them cut out and centred). The service's one image path; knows
  nothing of training.
- `model.data`: MNIST from its four IDX files.
- `model.synth`: synthetic images made in code, seeded: real-world kinds of digits and numbers,
  non-digits, renderings for training.
- `model.train`: the offline training recipe (`python -m model.train`).
- `model.evaluate`: accuracy, calibration and the tutorial's plots (`python -m model.evaluate`).

Imports run one way: imaging uses the contract only; synth uses imaging and data; train and
evaluate use any of them; the service (`app`) uses imaging and the network's modules only.
"""
