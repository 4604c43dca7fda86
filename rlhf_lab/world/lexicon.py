"""The language of the review world: its words, their values, and its sentence patterns.

`rlhf_lab.world.reviews` holds the generator and `rlhf_lab.world.judges` the gold judges; everything
they can say or know lives here, so a student can read the whole language in one sitting.

* sentiment tables map a strength to words, graded on a symmetric scale (+1.0 masterful
  ... +0.25 decent, -0.25 bland ... -1.0 dreadful); every table has the same levels on
  both sides, which is what keeps the world's reviews balanced around 0;
* modifiers (intensifiers, downtoners, negators, contrast words) with the factor by which
  each changes the word after it;
* neutral tables (titles, names, genres, times) carry no sentiment at all: the judges
  must not be swayed by a film called "The Burning Orchard";
* `PATTERNS`, the sentence templates, and `vocabulary()`, every word they can produce.

`SENTIMENT` merges the sentiment tables into one word -> value dict (the gold lexicon)
and refuses, at import, a word listed with two different values.
"""
import re
from dataclasses import dataclass


# ---- sentiment-bearing words, by strength ------------------------------------------
# Adjectives every aspect can take ("the score is dull", "the pacing is superb").
ADJECTIVES: dict[float, tuple[str, ...]] = {
    1.0: ("brilliant", "masterful", "superb", "outstanding", "magnificent", "extraordinary",
          "exceptional", "flawless", "sublime", "stunning", "breathtaking", "phenomenal"),
    0.75: ("great", "excellent", "wonderful", "terrific", "impressive", "delightful",
           "memorable", "remarkable", "beautiful", "gripping", "lovely", "inventive",
           "riveting", "moving"),
    0.5: ("good", "enjoyable", "solid", "pleasant", "engaging", "charming", "fun", "nice",
          "effective", "lively", "appealing", "strong"),
    0.25: ("decent", "fine", "okay", "passable", "watchable", "competent", "adequate",
           "serviceable", "tolerable", "reasonable", "respectable"),
    -0.25: ("uneven", "forgettable", "bland", "predictable", "ordinary", "underwhelming",
            "patchy", "unremarkable", "middling", "lukewarm", "flat"),
    -0.5: ("dull", "boring", "weak", "tedious", "clumsy", "stale", "mediocre", "sloppy",
           "messy", "tiresome", "disappointing", "lackluster"),
    -0.75: ("bad", "poor", "lifeless", "shallow", "irritating", "annoying", "incoherent",
            "lazy", "painful", "dreary", "grating", "ugly"),
    -1.0: ("dreadful", "awful", "terrible", "atrocious", "abysmal", "horrible",
           "unbearable", "unwatchable", "disastrous", "insufferable", "dismal", "appalling"),
}

# Adjectives that only fit one aspect ("wooden" acting, "brisk" pacing); the generator
# adds them to the general pool when it talks about that aspect.
ASPECT_ADJECTIVES: dict[str, dict[float, tuple[str, ...]]] = {
    "plot": {0.75: ("clever",), 0.5: ("intricate",), -0.5: ("convoluted", "contrived"),
             -0.75: ("absurd",)},
    "acting": {0.75: ("nuanced",), 0.5: ("convincing", "committed"), 0.25: ("natural",),
               -0.5: ("stiff", "hammy"), -0.75: ("wooden",)},
    "soundtrack": {0.75: ("haunting", "rousing"), 0.5: ("catchy",),
                   -0.5: ("intrusive", "repetitive"), -0.75: ("shrill",)},
    "visuals": {1.0: ("gorgeous",), 0.75: ("lush", "striking"), 0.5: ("crisp",),
                -0.5: ("murky", "cheap"), -0.75: ("garish",)},
    "pacing": {0.75: ("taut",), 0.5: ("brisk",), -0.25: ("slow",), -0.5: ("sluggish",),
               -0.75: ("plodding", "glacial")},
    "ending": {0.75: ("poignant",), 0.5: ("satisfying",), -0.25: ("abrupt",),
               -0.5: ("rushed", "baffling")},
    "dialogue": {0.75: ("witty",), 0.5: ("sharp", "crisp"), -0.5: ("clunky", "corny"),
                 -0.75: ("stilted",)},
    "characters": {0.75: ("vivid",), 0.5: ("likable", "relatable"), -0.25: ("thin",),
                   -0.5: ("unlikable",), -0.75: ("cardboard",)},
    "direction": {0.75: ("assured", "inspired"), 0.5: ("confident",),
                  -0.5: ("aimless", "confused")},
    "humor": {1.0: ("hilarious",), 0.75: ("witty", "clever"), 0.5: ("funny",),
              -0.25: ("silly",), -0.5: ("juvenile",), -0.75: ("lame", "unfunny")},
}

# Intransitive verbs as (third-person singular, plural, value): "the score soars".
VERBS_INTRANSITIVE: tuple[tuple[str, str, float], ...] = (
    ("soars", "soar", 1.0), ("shines", "shine", 0.75), ("sparkles", "sparkle", 0.75),
    ("delights", "delight", 0.75), ("impresses", "impress", 0.5),
    ("succeeds", "succeed", 0.5), ("charms", "charm", 0.5),
    ("collapses", "collapse", -1.0), ("fails", "fail", -0.75), ("grates", "grate", -0.75),
    ("drags", "drag", -0.5), ("falters", "falter", -0.5), ("stumbles", "stumble", -0.5),
    ("sags", "sag", -0.5), ("disappoints", "disappoint", -0.5),
)
# Transitive verbs with "I" as (past, base, value): "I loved the score", "I did not enjoy it".
VERBS_TRANSITIVE: tuple[tuple[str, str, float], ...] = (
    ("adored", "adore", 1.0), ("loved", "love", 0.75), ("enjoyed", "enjoy", 0.5),
    ("admired", "admire", 0.5), ("loathed", "loathe", -1.0), ("hated", "hate", -0.75),
    ("disliked", "dislike", -0.5), ("resented", "resent", -0.5),
)
# Nouns for "X is a masterpiece" / "X is a letdown".
NOUNS: dict[float, tuple[str, ...]] = {
    1.0: ("masterpiece", "triumph"), 0.75: ("gem", "delight"), 0.5: ("treat", "pleasure"),
    -0.5: ("letdown", "chore", "slog", "misfire"), -0.75: ("mess", "failure"),
    -1.0: ("disaster", "catastrophe"),
}
# Manner adverbs for "the dialogue is beautifully written".
ADVERBS: dict[float, tuple[str, ...]] = {
    1.0: ("brilliantly", "masterfully"), 0.75: ("beautifully", "wonderfully", "expertly"),
    0.5: ("nicely", "skillfully", "effectively"), 0.25: ("competently", "adequately"),
    -0.25: ("unevenly", "blandly"), -0.5: ("clumsily", "awkwardly", "lazily", "sloppily"),
    -0.75: ("poorly", "badly"), -1.0: ("atrociously", "abysmally"),
}
# Closing verdicts: "I would recommend it" / "I would skip it".
RECOMMEND: dict[float, tuple[str, ...]] = {0.5: ("recommend",), -0.5: ("skip",)}

# Words the generator never writes but a real language model might; the judge still
# scores them so that "the best movie ever" is not read as neutral.
JUDGE_ONLY: dict[str, float] = {
    "amazing": 1.0, "fantastic": 1.0, "perfect": 1.0, "best": 1.0, "awesome": 0.75,
    "loves": 0.75, "enjoys": 0.5, "recommended": 0.5, "better": 0.5, "interesting": 0.5,
    "hates": -0.75, "worse": -0.75, "stupid": -0.75, "pointless": -0.75, "waste": -0.75,
    "worst": -1.0, "garbage": -1.0, "rubbish": -1.0,
}

# ---- modifiers ---------------------------------------------------------------------
INTENSIFIER_SCALE = 1.5    # "very good" = 1.5 * good
DOWNTONER_SCALE = 0.5      # "slightly good" = 0.5 * good
NEGATION_SCALE = -0.4      # "not bad" = -0.4 * bad: flipped and damped ("not brilliant" > "awful")
# What the generator writes in front of each part of speech ...
ADJ_INTENSIFIERS = ("very", "truly", "remarkably", "really", "extremely", "incredibly",
                    "genuinely", "thoroughly", "utterly")
VERB_INTENSIFIERS = ("really", "truly", "genuinely")
NOUN_INTENSIFIERS = ("real", "complete", "total", "absolute", "genuine", "utter")
ADV_INTENSIFIERS = ("very", "really", "truly")
REC_INTENSIFIERS = {0.5: ("highly", "strongly"), -0.5: ("definitely",)}
DOWNTONER_WORDS = ("slightly", "somewhat", "rather", "fairly", "mildly")  # "a fairly dull plot"
DOWNTONER_PHRASES = DOWNTONER_WORDS + ("a bit", "a little")  # "feels a bit dull", not "a a bit"
NEGATION_PHRASES = ("not", "far from", "never", "hardly")   # before an adjective
# ... and what the judge recognises: any of these *directly* before a sentiment word.
INTENSIFIERS = frozenset(ADJ_INTENSIFIERS + VERB_INTENSIFIERS + NOUN_INTENSIFIERS
                         + ADV_INTENSIFIERS + ("highly", "strongly", "definitely", "so",
                                               "most", "absolutely", "especially"))
DOWNTONERS = frozenset(("slightly", "somewhat", "rather", "fairly", "mildly", "bit",
                        "little", "moderately"))
# Negators; besides these, any word ending in "n't" and the pair "far from" negate.
NEGATORS = frozenset(("not", "never", "no", "hardly", "barely", "scarcely", "cannot",
                      "nor", "neither"))
CONTRAST_WORDS = frozenset(("but", "yet", "however", "nevertheless", "nonetheless"))
CONCESSIVE_WORDS = frozenset(("although", "though", "whereas", "despite"))

# ---- aspects -----------------------------------------------------------------------
# The nouns the generator uses for each aspect, with their grammatical number:
# "sg" takes "a"/"is", "pl" takes "are", "mass" takes no article and "is".
ASPECT_NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "plot": (("plot", "sg"), ("story", "sg"), ("script", "sg"), ("storyline", "sg"),
             ("twists", "pl")),
    "acting": (("acting", "mass"), ("performances", "pl"), ("cast", "sg"), ("lead", "sg")),
    "soundtrack": (("soundtrack", "sg"), ("score", "sg"), ("music", "mass"),
                   ("songs", "pl")),
    "visuals": (("visuals", "pl"), ("cinematography", "mass"), ("effects", "pl"),
                ("camerawork", "mass")),
    "pacing": (("pacing", "mass"), ("pace", "sg"), ("rhythm", "sg"), ("editing", "mass")),
    "ending": (("ending", "sg"), ("finale", "sg"), ("climax", "sg"), ("conclusion", "sg")),
    "dialogue": (("dialogue", "mass"), ("lines", "pl"), ("banter", "mass"),
                 ("conversations", "pl")),
    "characters": (("characters", "pl"), ("protagonist", "sg"), ("villain", "sg"),
                   ("heroine", "sg")),
    "direction": (("direction", "mass"), ("directing", "mass"), ("staging", "mass")),
    "humor": (("humor", "mass"), ("jokes", "pl"), ("gags", "pl"), ("comedy", "mass")),
}
# Further words that count as mentioning an aspect (other forms a model may write).
ASPECT_EXTRA_WORDS: dict[str, tuple[str, ...]] = {
    "plot": ("plots", "stories", "screenplay", "twist", "narrative", "storylines"),
    "acting": ("actor", "actors", "actress", "performance", "performers"),
    "soundtrack": ("soundtracks", "song", "composer", "soundscape"),
    "visuals": ("visual", "photography", "imagery", "shots", "effect"),
    "pacing": ("paced", "tempo"),
    "ending": ("endings", "finales", "conclusions"),
    "dialogue": ("dialog", "dialogues", "conversation", "line"),
    "characters": ("character", "protagonists", "villains", "hero", "heroes"),
    "direction": ("director", "directed", "filmmaking"),
    "humor": ("humour", "joke", "gag", "laughs"),
}
# Past participles for "the <aspect> is beautifully <participle>".
PARTICIPLES: dict[str, tuple[str, ...]] = {
    "plot": ("written", "plotted", "constructed"), "acting": ("judged", "played", "pitched"),
    "soundtrack": ("composed", "chosen", "used"), "visuals": ("shot", "framed", "lit"),
    "pacing": ("judged", "handled", "controlled"), "ending": ("handled", "executed", "staged"),
    "dialogue": ("written", "delivered", "scripted"),
    "characters": ("written", "drawn", "developed"),
    "direction": ("handled", "executed", "controlled"), "humor": ("timed", "written", "delivered"),
}

# ---- neutral tables ----------------------------------------------------------------
TITLE_ADJECTIVES = (
    "Crimson", "Silver", "Hollow", "Silent", "Northern", "Paper", "Glass", "Iron", "Velvet",
    "Amber", "Scarlet", "Winter", "Distant", "Burning", "Frozen", "Midnight", "Golden",
    "Quiet", "Wandering", "Last", "Hidden", "Stone", "Copper", "Pale", "Lonely", "Broken",
    "Sleeping", "Seventh", "Forgotten", "Electric", "Wild", "Lost", "Emerald", "Violet",
    "Cobalt", "Ivory", "Southern", "Restless", "Sunken", "Painted", "Falling", "Secret")
TITLE_NOUNS = (
    "Harbor", "Orchard", "Lantern", "River", "Garden", "Kingdom", "Tower", "Signal",
    "Voyage", "Mirror", "Meridian", "Compass", "Horizon", "Citadel", "Archive", "Frontier",
    "Lighthouse", "Carnival", "Station", "Summer", "Forest", "Empire", "Chapel", "Canyon",
    "Engine", "Island", "Circus", "Valley", "Ember", "Atlas", "Crown", "Feather", "Orbit",
    "Tide", "Cathedral", "Bridge", "Desert", "Hotel", "Parade", "Cipher", "Ferry", "Quarry",
    "Monsoon", "Vineyard")
TITLE_OF = ("Ash", "Salt", "Smoke", "Rain", "Dust", "Thunder", "Stars", "Ghosts", "Kings",
            "Bones", "Wolves", "Sparrows", "Echoes", "Shadows", "Strangers", "Glass")
FIRST_NAMES = ("Mara", "Tomas", "Ines", "Felix", "Nadia", "Oskar", "Lena", "Rafael", "Iris",
               "Jonah", "Talia", "Viktor", "Elena", "Priya", "Desmond")
LAST_NAMES = ("Quill", "Reyes", "Varga", "Okafor", "Lindqvist", "Moreau", "Castellan",
              "Hale", "Sato", "Brennan", "Novak", "Ferreira", "Ashdown", "Kovac", "Marsh")
ROLES = ("a retired detective", "a grieving widow", "a young pilot", "a small-town teacher",
         "the ship's captain", "a reluctant smuggler", "an aging magician",
         "a stubborn lighthouse keeper", "a runaway heiress", "the village doctor",
         "a disgraced chemist", "an exiled prince", "a nervous bank clerk",
         "a travelling musician", "a country vet")
SUBJECTS = ("two estranged sisters", "a missing painter", "a family of beekeepers",
            "a heist gone wrong", "a bankrupt circus", "an island cut off by a storm",
            "a chess prodigy", "a night shift at a hospital", "a forgotten war",
            "a town waiting for rain", "a stolen violin", "a long road trip",
            "a secret society of mapmakers", "a rivalry between two chefs",
            "an expedition to the north", "a widowed father and his son")
GENRES = ("thriller", "drama", "western", "mystery", "romance", "musical", "fantasy",
          "satire", "documentary", "adventure", "noir", "biopic", "fable", "epic",
          "heist film", "war film", "road movie")
FILM_NOUNS = ("film", "movie", "picture")
TIMES = ("last night", "this weekend", "on Friday", "at the festival", "yesterday",
         "at a late show", "on a long flight", "over the holidays", "at the cinema",
         "on Sunday afternoon", "at a matinee")
COMPANY = ("with friends", "with my sister", "alone", "with my father", "with a colleague",
           "with my partner")
LEADS = ("Overall", "All in all", "In short", "On the whole", "In the end", "Honestly",
         "Frankly", "Simply put")
# Words the grammar's slots emit that appear in no table above or template below.
GRAMMAR_WORDS = ("rating", "a", "an", "the", "is", "are", "it", "they", "feels", "feel", "starts",
                 "start", "ends", "end", "did", "didn't", "not", "never", "of")


def _merge_sentiment() -> dict[str, float]:
    """Every sentiment word -> value; raises if one word is listed at two strengths."""
    pairs: list[tuple[str, float]] = []
    for table in (ADJECTIVES, NOUNS, ADVERBS, RECOMMEND,
                  *ASPECT_ADJECTIVES.values()):
        pairs += [(w, v) for v, words in table.items() for w in words]
    for a, b, v in VERBS_INTRANSITIVE + VERBS_TRANSITIVE:
        pairs += [(a, v), (b, v)]
    pairs += list(JUDGE_ONLY.items())
    lexicon: dict[str, float] = {}
    for word, value in pairs:
        if lexicon.setdefault(word, value) != value:
            raise ValueError(f"{word!r} listed as both {lexicon[word]} and {value}")
    return lexicon


SENTIMENT: dict[str, float] = _merge_sentiment()


# ---- sentence patterns -------------------------------------------------------------
INSTRUCTION_TEMPLATE = 'Write a review of the {aspect} of "{title}".\nReview:'
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")   # a word, as judges and vocabulary() split it
SLOT_RE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Pattern:
    name: str
    role: str      # "aspect" | "contrast" | "verdict" | "neutral" | "opener"
    template: str  # {slot}s; a clause slot ending in 2 is about the second clause;
                   # " | " in an opener marks where its opening prompt is cut


# Slots: {np} "the <aspect noun>"; {be}/{feel}/{pron}/{starts}/{ends} agree with it;
# {adjp} an adjective phrase that may be negated ("far from brilliant"); {adj}/{adj_b}
# one with at most an intensifier or downtoner; {attr} the same before a noun; {indef}
# "<attr> <aspect noun>" with its article; {adv} {part} "beautifully written"; {vt} "I
# loved"; {vi} "soars"; {nounp} "a masterpiece"; {a_film} "a gripping thriller"; {rec}
# "recommend"; {end} "." or "!"; the rest ({title}, {genre}, {time}, ...) are neutral.
PATTERNS: tuple[Pattern, ...] = (
    Pattern("is_adj", "aspect", "{np} {be} {adjp}{end}"),
    Pattern("feels_adj", "aspect", "{np} {feel} {adj}{end}"),
    Pattern("found_adj", "aspect", "I found {np} {adj}{end}"),
    Pattern("adv_part", "aspect", "{np} {be} {adv} {part}{end}"),
    Pattern("i_verb", "aspect", "I {vt} {np}{end}"),
    Pattern("np_verb", "aspect", "{np} {vi}{end}"),
    Pattern("something_about", "aspect", "There is something {attr} about {np}{end}"),
    Pattern("as_for", "aspect", "As for {np}, {pron} {be} {adjp}{end}"),
    Pattern("title_has", "aspect", "{title} has {indef}{end}"),
    Pattern("is_noun", "aspect", "{np} {be} {nounp}{end}"),
    Pattern("two_adj", "aspect", "{np} {be} {adj} and {adj_b}{end}"),
    Pattern("what_a", "aspect", "What {indef}!"),
    Pattern("it_is_with", "aspect", "It is {a_film} with {indef}{end}"),
    Pattern("but", "contrast", "{np} {be} {adjp}, but {np2} {be2} {adjp2}{end}"),
    Pattern("although", "contrast", "Although {np} {be} {adjp}, {np2} {be2} {adjp2}{end}"),
    Pattern("yet_verb", "contrast", "{np} {be} {adjp}, yet {np2} {vi2}{end}"),
    Pattern("despite", "contrast", "Despite {indef}, {np2} {be2} {adjp2}{end}"),
    Pattern("verb_but", "contrast", "I {vt} {np}, but {np2} {be2} {adjp2}{end}"),
    Pattern("starts_ends", "contrast", "{np} {starts} {adj} but {ends2} {adj2}{end}"),
    Pattern("aspect_of_but", "contrast", '{np} of "{title}" {be} {adjp}, but {np2} {vi2}{end}'),
    Pattern("overall", "verdict", "{lead}, {title} is {a_film}{end}"),
    Pattern("title_noun", "verdict", "{title} is {nounp}{end}"),
    Pattern("recommend", "verdict", "I would {rec} it{end}"),
    Pattern("lead_film", "verdict", "{lead}, the {film} is {adjp}{end}"),
    Pattern("about", "neutral", "It is {a_genre} about {subject}."),
    Pattern("saw_it", "neutral", "I saw it {time} {company}."),
    Pattern("plays", "neutral", "{name} plays {role}."),
    Pattern("title_colon", "opener", "{title}: {np} {be} | {adjp}{end}"),
    Pattern("watched", "opener", 'I watched "{title}" {time} and | {vt} {np}{end}'),
    Pattern("in_title", "opener", 'In "{title}", {np} {be} | {adjp}{end}'),
    Pattern("genre_about", "opener",
            '"{title}" is {a_genre} about {subject}, and {np} {be} | {adjp}{end}'),
    Pattern("new_genre", "opener", 'The new {genre} "{title}" is | {adjp}{end}'),
    Pattern("aspect_of", "opener", '{np} of "{title}" {be} | {adjp}{end}'),
)


# Phrase shapes, for the generator: how a word of strength v may be dressed, as
# (judged value, prior, form, v). The judge is the source of truth; these are its rules
# run forwards, so "not very good" is built knowing it reads as -0.4 * 1.5 * 0.5 = -0.3.
# The priors make plain words the commonest.
FORMS = {"plain": (1.0, 1.0), "int": (INTENSIFIER_SCALE, 0.5), "down": (DOWNTONER_SCALE, 0.35),
         "neg": (NEGATION_SCALE, 0.35), "negint": (NEGATION_SCALE * INTENSIFIER_SCALE, 0.15)}
KINDS = {  # kind -> (strength levels, allowed forms)
    "adjp": (ADJECTIVES, ("plain", "int", "down", "neg", "negint")),  # "is far from good"
    "adj": (ADJECTIVES, ("plain", "int", "down")),                    # "feels a bit dull"
    "attr": (ADJECTIVES, ("plain", "int", "down")),                   # "a slightly dull plot"
    "vi": ({v for *_, v in VERBS_INTRANSITIVE}, ("plain", "int", "neg")),
    "vt": ({v for *_, v in VERBS_TRANSITIVE}, ("plain", "int", "neg")),
    "noun": (NOUNS, ("plain", "int", "neg")),
    "adv": (ADVERBS, ("plain", "int", "down")),
    "rec": (RECOMMEND, ("plain", "int", "neg")),
}


def _form_ok(form: str, v: float) -> bool:
    """Keep phrases idiomatic: no "very decent", "fairly dreadful" or "not okay"."""
    return {"int": abs(v) >= 0.5, "down": abs(v) <= 0.75, "neg": abs(v) >= 0.5,
            "negint": abs(v) == 0.5}.get(form, True)


SHAPES = {kind: [(v * FORMS[f][0], FORMS[f][1], f, v) for v in sorted(levels)
                 for f in forms if _form_ok(f, v)]
          for kind, (levels, forms) in KINDS.items()}
SHAPE_TAU = 0.12   # softness of the pick: weight = prior * exp(-|value - target| / tau)
PHRASE_SLOTS = {"adjp": "adjp", "adj": "adj", "adj_b": "adj", "attr": "attr", "adv": "adv",
                "vi": "vi", "vt": "vt", "rec": "rec", "nounp": "noun"}   # slot -> kind
AGREE = {"be": ("is", "are"), "pron": ("it", "they"), "feel": ("feels", "feel"),
         "starts": ("starts", "start"), "ends": ("ends", "end")}   # (singular, plural)
SLOT_TABLES = {"film": FILM_NOUNS, "time": TIMES, "company": COMPANY, "role": ROLES,
               "lead": LEADS}   # {genre} and {subject} are drawn once per review instead


def vocabulary() -> set[str]:
    """Every word the grammar can emit, lowercased (split like the judge: "didn't" is one)."""
    texts = [p.template for p in PATTERNS] + [INSTRUCTION_TEMPLATE] + list(ASPECT_NOUNS)
    for table in (ADJECTIVES, NOUNS, ADVERBS, RECOMMEND, REC_INTENSIFIERS, *ASPECT_ADJECTIVES.values()):
        texts += [w for words in table.values() for w in words]
    texts += [w for a, b, _ in VERBS_INTRANSITIVE + VERBS_TRANSITIVE for w in (a, b)]
    texts += [w for nouns in ASPECT_NOUNS.values() for w, _ in nouns]
    texts += [w for words in PARTICIPLES.values() for w in words]
    for table in (ADJ_INTENSIFIERS, VERB_INTENSIFIERS, NOUN_INTENSIFIERS, ADV_INTENSIFIERS, DOWNTONER_PHRASES,
                  NEGATION_PHRASES, TITLE_ADJECTIVES, TITLE_NOUNS, TITLE_OF, FIRST_NAMES, LAST_NAMES, ROLES,
                  SUBJECTS, GENRES, FILM_NOUNS, TIMES, COMPANY, LEADS, GRAMMAR_WORDS):
        texts += list(table)
    return set(WORD_RE.findall(SLOT_RE.sub(" ", " ".join(texts)).lower()))
