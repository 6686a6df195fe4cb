"""Reward functions of this job, reproducing dpo-ts's built-in rewards exactly (written by dpo-ts export-job).

TRL's reward-function contract: f(prompts, completions, **kwargs) -> list[float], one float per completion;
a conversational completion is a list of messages (their contents are scored).

afinn: the AFINN-165 score of npm `sentiment` 5.0.2 (what dpo-ts's `afinn` reward runs): the text lowercased,
newlines and the characters . , / # ! ? $ % ^ & * ; : { } = _ ` " ~ ( ) replaced by spaces, runs of two or more
JavaScript whitespace characters collapsed to one space, trimmed, split on single spaces; each token's score
from the word list (AFINN-165 with the package's emoji scores), negated when the previous token is a negator
(or "constructor" / "__proto__", which the package's object lookup also treats as negators); the sum.
The lists are rewards/afinn.json (copied from the package; MIT, word list AFINN-165 by Finn Årup Nielsen).
"""

import json
import os
import re

_HERE = os.path.dirname(os.path.abspath(__file__))
# JavaScript's \s (WhiteSpace and LineTerminator), which String.prototype.trim() strips too.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PUNCT = re.compile(r'[.,/#!?$%^&*;:{}=_`"~()]')
_SPACES = re.compile("[" + re.escape(_JS_SPACE) + "]{2,}")
# Lowercase names an object lookup in JavaScript finds on Object.prototype (truthy), so `negators[token]` holds.
_JS_PROTOTYPE_NAMES = frozenset(["constructor", "__proto__"])
_AFINN = None


def _afinn_lists():
    global _AFINN
    if _AFINN is None:
        with open(os.path.join(_HERE, "rewards", "afinn.json"), encoding="utf-8") as f:
            data = json.load(f)
        _AFINN = (data["labels"], frozenset(data["negators"]) | _JS_PROTOTYPE_NAMES)
    return _AFINN


def _text(completion):
    if isinstance(completion, list):
        return " ".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in completion)
    return completion


def afinn_score(text):
    labels, negators = _afinn_lists()
    t = text.lower().replace("\n", " ")
    t = _PUNCT.sub(" ", t)
    t = _SPACES.sub(" ", t)
    t = t.strip(_JS_SPACE)
    tokens = t.split(" ")
    score = 0
    for i, token in enumerate(tokens):
        if token not in labels:
            continue
        s = labels[token]
        if i > 0 and tokens[i - 1] in negators:
            s = -s
        score += s
    return score


def afinn(prompts, completions, **kwargs):
    """dpo-ts's `afinn` reward: the AFINN-165 score of each completion."""
    return [float(afinn_score(_text(c))) for c in completions]


if __name__ == "__main__":
    # Scores JSON lines of strings from stdin (a check against dpo-ts: one score per line out).
    import sys

    for line in sys.stdin:
        if line.strip():
            print(json.dumps(afinn_score(json.loads(line))))
