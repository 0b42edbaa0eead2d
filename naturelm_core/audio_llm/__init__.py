"""The audio-LLM family shared by NatureLM-audio and SALMONN: BEATs, the window-level Q-Former,
the LoRA-wrapped Llama (`model.AudioLLM`), prompt pieces, cached decoding and the batched engine."""
