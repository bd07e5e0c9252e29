"""Offline synthetic "default" data set: TTS engines + augmentation + procedural noise.

Entry point: `ml.synth.generate.generate`; engines found here: `ml.synth.engines.available_engines`.
"""
