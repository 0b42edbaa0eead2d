"""NatureLM-audio (BEATs -> window-level Q-Former -> Llama 3.1 + LoRA), re-implemented so that the
published checkpoint loads key for key. Read `model.py` first; `docs/naturelm.md` maps the files."""
