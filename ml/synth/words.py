"""Vocabulary of the synthetic data set.

The `_unknown_` words are the Speech Commands auxiliary words plus near-misses
of the commands (same vowel or same onset), so the model learns the boundary
of each command rather than "anything that is not one of my words".
Homophones of commands (know, write) are left out: their audio would be a
command under the wrong label.
"""

COMMANDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
LABELS = COMMANDS + (SILENCE, UNKNOWN)

# Speech Commands' other words.
_AUXILIARY = (
    "bed bird cat dog eight five four happy house marvin nine one off on seven sheila six "
    "three tree two wow zero backward forward follow learn visual"
).split()

# Near-misses, grouped by the command they resemble.
_NEAR_MISSES = (
    "yeah yet yell yak guess less mess chess yesterday "  # yes
    "nope note nose snow noon now nor nine"  # no
    "app cup pup op upper hop "  # up
    "dawn town gown drown doubt dune loud "  # down
    "lift loft laughed lest theft lefty "  # left
    "light bright fight ride rice kite wrong "  # right
    "top shop stock step stomp spot stuff "  # stop
    "toe so dough goal grow glow goat got "  # go
    "hello okay"
).split()

UNKNOWN_WORDS = tuple(dict.fromkeys(_AUXILIARY + _NEAR_MISSES))

# Filler for babble noise: ordinary words, none of them a command.
BABBLE_WORDS = tuple(UNKNOWN_WORDS) + tuple(
    "the a and then we you they it was is are of to in for with that this there here "
    "what when where morning coffee window table people today because maybe really "
    "never always little number water paper music garden kitchen market station".split()
)

assert not set(UNKNOWN_WORDS) & set(COMMANDS)
assert not set(BABBLE_WORDS) & set(COMMANDS)
