"""Vocabulary of the synthetic data set.

The `_unknown_` words are the Speech Commands auxiliary words plus everyday
words, none a command nor a near-homophone of one.
"""
from ml.config import SILENCE, UNKNOWN

COMMANDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
LABELS = COMMANDS + (SILENCE, UNKNOWN)

# Speech Commands' other words.
_AUXILIARY = (
    "bed bird cat dog eight five four happy house marvin nine one off on seven sheila six "
    "three tree two wow zero backward forward follow learn visual"
).split()

# Everyday words and short phrases that sound like none of the commands. Near-misses
# ("yeah", "nope", "toe", "lift") were tried and cost real-speech accuracy: a
# synthetic "yeah" is too close to how people say "yes".
_EVERYDAY = (
    "hello okay please thanks water music paper window table people morning coffee "
    "garden kitchen market station number little maybe today because computer banana "
    "orange purple yellow seventy twenty hundred thousand monday friday weather "
    "pizza doctor family picture camera minute second"
).split()

UNKNOWN_WORDS = tuple(dict.fromkeys(_AUXILIARY + _EVERYDAY))

# "on" and "off" are what people say to a device most after its own commands, and
# "off" is one consonant away from "up": each is drawn as often as 8 other words.
UNKNOWN_DRAWS = {"on": 8, "off": 8}

# Filler for babble noise: ordinary words, none of them a command.
BABBLE_WORDS = tuple(UNKNOWN_WORDS) + tuple(
    "the a and then we you they it was is are of to in for with that this there here "
    "what when where really never always".split()
)

assert not set(UNKNOWN_WORDS) & set(COMMANDS)
assert not set(BABBLE_WORDS) & set(COMMANDS)
