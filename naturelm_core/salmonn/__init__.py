"""SALMONN (Whisper + BEATs -> window-level Q-Former -> Vicuna with LoRA), a member of the audio-LLM family."""
