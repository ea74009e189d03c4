"""The closed vocabulary of the reference corpus, grouped into labelled classes.

Every word is a single token. Years are written as two two-digit tokens, the way GPT-2
tokenises them (" 1732" -> " 17", "32"): a century token with a leading space and a
two-digit token without one. Word tokens carry a leading "▁" (the Metaspace marker that
the tokenizer turns back into a space), so the vocabulary behaves like GPT-2's
"Ġ"-prefixed tokens.
"""

from __future__ import annotations

SPACE = "▁"
BOS = "<|endoftext|>"
UNK = "<|unk|>"

COLOURS = (
    "red blue green yellow purple orange black white grey brown pink violet "
    "golden silver crimson teal"
).split()
ANIMALS = (
    "fox dog cat horse rabbit wolf bear mouse owl eagle tiger lion sheep goat "
    "otter badger"
).split()
NAMES = (
    "Anna Ben Clara David Emma Felix Grace Henry Iris Jack Laura Max Nora Oscar "
    "Paula Sam"
).split()
NUMBERS = "two three four five six seven eight nine ten eleven twelve twenty".split()
PLACES = (
    "Paris Rome Tokyo Cairo Lima Oslo Delhi Berlin Madrid Vienna Prague Dublin "
    "Lisbon Athens Warsaw Sydney Boston Denver Austin Dallas Quebec Toronto Bogota "
    "Havana Nairobi Lagos Accra Tunis Dakar Riga Tallinn Vilnius Helsinki Bergen "
    "Kyoto Osaka Seoul Busan Hanoi Manila Jakarta Perth Hobart Auckland Geneva "
    "Zurich Munich Hamburg Milan Naples Venice Seville Porto Malaga Krakow Gdansk "
    "Budapest Sofia Zagreb Belgrade Ankara Tehran Baghdad Kabul"
).split()
JOBS = (
    "baker pilot farmer doctor nurse teacher lawyer painter singer dancer writer "
    "poet tailor barber butcher miner sailor soldier judge chemist dentist surgeon "
    "plumber builder carpenter mason potter weaver cook waiter driver porter clerk "
    "banker broker trader jeweler printer editor author actor juggler magician "
    "gardener ranger hunter fisher shepherd miller brewer vintner grocer florist "
    "janitor guard detective engineer architect pharmacist librarian professor "
    "astronomer geologist biologist"
).split()
# Factual-recall subjects: invented names, so that nothing but training data links
# them to their attributes.
SUBJECTS = (
    "Abor Bexil Corran Dalvo Efrin Fennic Garrow Hollis Ivaro Jessel Kovin Lurian "
    "Morvak Nestor Ordell Pavric Quillan Rostam Selvin Torvik Ulric Varden Wexler "
    "Yorick Zandor Alric Brannoc Cedric Dorian Elmar Fabian Gideon Halvard Isidor "
    "Jorund Kelvar Leopold Mirek Norbert Osric Percival Radomir Sigurd Tancred "
    "Umberto Valdis Wendel Xaver Yannic Zoltan Anselm Bertram Casimir Desmond "
    "Evander Florian Godfrey Hadrian Ignatz Jasper Konrad Lothar Marius Nikolai"
).split()
FSM_STATES = [f"S{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWX"]
TWO_DIGITS = [f"{i:02d}" for i in range(100)]
CENTURIES = [str(c) for c in range(11, 20)]

GT_NOUNS = (
    "war expedition drought dynasty festival strike siege voyage reign famine "
    "rebellion truce"
).split()

# Function words used by the templates.
FUNCTION_WORDS = (
    "The the a an and in of to from year lasted started ended was born works as "
    "saw near with has lives met likes owns found visited chased bought painted "
    "birds trees houses boats rode toward trace rep is his her their on at by "
    "after before into over under walked ran quickly slowly today yesterday"
).split()
PUNCTUATION = [".", ",", ":", ";"]

SEMANTIC_CLASSES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "animal": tuple(ANIMALS),
    "name": tuple(NAMES),
    "number": tuple(NUMBERS),
    "place": tuple(PLACES),
    "job": tuple(JOBS),
    "subject": tuple(SUBJECTS),
    "fsm_state": tuple(FSM_STATES),
}


def all_tokens() -> list[str]:
    """The full vocabulary, in a fixed order: specials, words, centuries, two-digit years."""
    words: list[str] = []
    for group in (
        FUNCTION_WORDS,
        COLOURS,
        ANIMALS,
        NAMES,
        NUMBERS,
        PLACES,
        JOBS,
        SUBJECTS,
        FSM_STATES,
        GT_NOUNS,
    ):
        words.extend(group)
    tokens = [BOS, UNK]
    seen = set(tokens)
    for word in words:
        token = SPACE + word
        if token not in seen:
            seen.add(token)
            tokens.append(token)
    for century in CENTURIES:
        tokens.append(SPACE + century)
    tokens.extend(TWO_DIGITS)
    tokens.extend(PUNCTUATION)
    return tokens
