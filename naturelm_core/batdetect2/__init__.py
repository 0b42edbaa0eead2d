"""BatDetect2 (Mac Aodha et al. 2022): call-level bat detection and UK species classification.

Our own implementation of BatDetect2 1.3.1's inference (its "legacy" API), reading the model file
that ships in its wheel (`Net2DFast_UK_same.pth.tar`) by its published key names. The
``batdetect2`` package itself is never imported: its metadata pulls torchaudio and torchvision,
which do not import beside our CPU torch.

- `config.py`: the front-end, network and post-processing parameters, read from the checkpoint's
  own ``params`` (defaults = the published UK model), and the 17 UK species' names;
- `frontend.py`: audio -> the network's input spectrogram (STFT, crop, PCEN, denoise, resize);
- `model.py`: the Net2DFast network, submodule names equal to the checkpoint's keys;
- `postprocess.py`: heatmap non-maximum suppression, top-k, and each call's box and classes;
- `checkpoint.py`: locating the weights, strict loading, the weights digest;
- `backend.py`: the `batdetect2` `ModelBackend` (3-s chunks, as BatDetect2's API);
- `tiny.py`: tiny random checkpoints in the published layout, for tests.

docs/bats.md is the user-facing page: recorder settings, species, licence, thresholds, windows,
and the measured agreement with BatDetect2 run on its own.
"""
