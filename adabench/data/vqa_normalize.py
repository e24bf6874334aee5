"""VQAv2 answer normalization, as lmms-eval 0.7.3 applies it (EvalAIAnswerProcessor steps).

lmms-eval's `vqav2` task calls only `process_punctuation` then `process_digit_article` (not the
processor's `__call__`), on the prediction and on every reference answer. The tables and both
quirks below are kept verbatim so scores agree with lmms-eval to the last bit:
- the period regex's `(?!<=\\d)` is a typo'd lookbehind (a lookahead that never fires), so a
  period is removed whenever the next character is not a digit ("3.5" stays, "ok." loses it);
- `PERIOD_STRIP.sub("", text, re.UNICODE)` passes `re.UNICODE` (32) as `count`, so at most
  the first 32 such periods are removed.
"""

from __future__ import annotations

import re

_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't
itd it'd|itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't
mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've
neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at
'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've
shouldnt shouldn't|shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd
somebodyd've somebody'd've|somebody'dve somebody'd've|somebodyll somebody'll
somebodys somebody's|someoned someone'd|someoned've someone'd've|someone'dve someone'd've
someonell someone'll|someones someone's|somethingd something'd|somethingd've something'd've
something'dve something'd've|somethingll something'll|thats that's|thered there'd
thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd
theyd've they'd've|they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas
wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|werent weren't|whatll what'll
whatre what're|whats what's|whatve what've|whens when's|whered where'd|wheres where's
whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've
wouldnt wouldn't|wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll
y'allll y'all'll|yall'd've y'all'd've|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd
youd've you'd've|you'dve you'd've|youll you'll|youre you're|youve you've
"""
# Keys with capitals ("Im", "Id've") never match: words are lower-cased first, as in lmms-eval.
CONTRACTIONS: dict[str, str] = dict(
    pair.split(" ") for pair in _CONTRACTION_PAIRS.replace("\n", "|").split("|") if pair
)

NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATIONS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!"]  # fmt: skip
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_MAX_PERIODS_REMOVED = int(re.UNICODE)  # lmms-eval passes re.UNICODE as `count` (= 32)


def process_punctuation(text: str) -> str:
    """Returns `text` with EvalAI punctuation handling: each mark is deleted when it touches a
    space somewhere in the input (or the input has a digit,digit comma), else replaced by a
    space; then periods not followed by a digit are deleted (first 32 only)."""
    has_digit_comma = COMMA_STRIP.search(text) is not None
    out = text
    for mark in PUNCTUATIONS:
        if mark + " " in text or " " + mark in text or has_digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return PERIOD_STRIP.sub("", out, count=_MAX_PERIODS_REMOVED)


def process_digit_article(text: str) -> str:
    """Returns `text` lower-cased and re-joined by single spaces, with number words 0-10 as
    digits ("none" → "0"), articles dropped and EvalAI contractions restored ("dont" → "don't")."""
    words = [NUMBER_MAP.get(word, word) for word in text.lower().split()]
    words = [CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES]
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """Returns `text` normalized as lmms-eval's vqav2 task does before comparing answers:
    newlines/tabs to spaces, strip, `process_punctuation`, then `process_digit_article`."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))
