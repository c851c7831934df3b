"""Prompt formats, answer shapes and answer extraction shared by every task family.

Formats are registered by name with ``harness.registry.register_format``; the built-ins:

- ``bare``: the prompt is the question (``12+34=``) and the completion is the answer (``46``).
- ``chat``: one user message asking for ``<think>…</think><answer>…</answer>``; the answer is the content of
  the last ``<answer>`` tag, else of the last ``\\boxed{…}``, else the last answer-like run in the text.
- ``boxed``: one user message asking for ``\\boxed{…}``; the answer is the last box, else the last
  answer-like run in the text.

A shape says what an answer looks like (an integer, a string of T/F, free text). Every function here
takes arbitrary text and never raises.

>>> extract("chat", IntegerShape(), "<think>2+3</think><answer>5</answer>"), format_ok("bare", IntegerShape(), "5 ")
('5', True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from harness.registry import get_format, register_format
from harness.tasks.base import Prompt

CHAT_INSTRUCTION = ("Think step by step inside <think> </think> tags, then write only the final answer "
                    "inside <answer> </answer> tags.")
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

_INT = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.0*)?")
_STRICT_INT = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER = re.compile(r"(?<![\w.])-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?!\w)")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_BOX = "\\boxed{"
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def canonical_int(text: str) -> str | None:
    """``text`` as a canonical integer, or None: signs, thousands commas and a zero fraction are allowed.

    >>> [canonical_int(s) for s in ("+46", "46.", " 46 ", "1,234", "-0", "17 + 22", "4.5")]
    ['46', '46', '46', '1234', '0', None, None]
    """
    s = text.strip()
    if not _INT.fullmatch(s):
        return None
    try:
        return str(int(s.split(".")[0].replace(",", "")))
    except ValueError:  # more digits than int() converts
        return None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (commas dropped, integers canonical), or None.

    >>> last_number("so 17 + 22 = 39."), last_number("x = -2.50"), last_number("12-5")
    ('39', '-2.50', '5')
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    number = found[-1].replace(",", "")
    return canonical_int(number) or number


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (nested braces matched), or None when absent or unclosed."""
    start = text.rfind(_BOX)
    if start < 0:
        return None
    depth = 1
    for i in range(start + len(_BOX), len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + len(_BOX):i]
    return None


def last_answer_tag(text: str) -> str | None:
    """Content of the last closed ``<answer>…</answer>``, or None."""
    found = _ANSWER_TAG.findall(text)
    return found[-1] if found else None


def chat_format_ok(text: str) -> bool:
    """Exactly ``<think>…</think><answer>…</answer>`` (whitespace around), each tag once, answer not empty."""
    s = text.strip()
    if not (s.startswith("<think>") and s.endswith("</answer>")) or any(s.count(t) != 1 for t in _TAGS):
        return False
    think_end, answer_start = s.find("</think>"), s.find("<answer>")
    return (think_end < answer_start and not s[think_end + len("</think>"):answer_start].strip()
            and bool(s[answer_start + len("<answer>"):-len("</answer>")].strip()))


def boxed_format_ok(text: str) -> bool:
    """Contains a closed, non-empty ``\\boxed{…}``."""
    boxed = last_boxed(text)
    return boxed is not None and bool(boxed.strip())


class Shape(Protocol):
    """What an answer looks like."""

    def canonical(self, text: str) -> str | None:
        """A whole answer, leniently read and put in canonical form, or None."""

    def exact(self, text: str) -> bool:
        """Whether ``text`` is already an answer in canonical form."""

    def last_in(self, text: str) -> str | None:
        """The last answer-like run in free text, canonical, or None."""


class IntegerShape:
    """Integers: ``46``, ``-7``."""

    def canonical(self, text: str) -> str | None:
        return canonical_int(text)

    def exact(self, text: str) -> bool:
        return bool(_STRICT_INT.fullmatch(text))

    def last_in(self, text: str) -> str | None:
        number = last_number(text)
        return None if number is None else canonical_int(number)


@dataclass(frozen=True)
class TruthShape:
    """A string of ``length`` letters T/F; spaces and commas between them are dropped when reading."""

    length: int

    def canonical(self, text: str) -> str | None:
        s = re.sub(r"[\s,]", "", text)
        return s if self.exact(s) else None

    def exact(self, text: str) -> bool:
        return len(text) == self.length and not text.strip("TF")

    def last_in(self, text: str) -> str | None:
        found = re.findall(rf"(?<![A-Za-z])[TF]{{{self.length}}}(?![A-Za-z])", text)
        return found[-1] if found else None


class FreeShape:
    """Any non-empty text (hub datasets): integers canonical, anything else stripped."""

    def canonical(self, text: str) -> str | None:
        s = text.strip()
        return (canonical_int(s) or s) if s else None

    def exact(self, text: str) -> bool:
        return bool(text.strip())

    def last_in(self, text: str) -> str | None:
        return last_number(text)


def user_prompt(fmt: str, description: str) -> Prompt:
    """The question in words posed in format ``fmt`` (chat, boxed: one user message with the format's instruction)."""
    return get_format(fmt).prompt(description)


def extract(fmt: str, shape: Shape, completion: str) -> str | None:
    """The canonical answer of ``completion`` in format ``fmt``, or None."""
    return get_format(fmt).extract(shape, completion)


def format_ok(fmt: str, shape: Shape, completion: str) -> bool:
    """Whether ``completion`` follows format ``fmt``."""
    return get_format(fmt).format_ok(shape, completion)


def _bare_extract(shape: Shape, completion: str) -> str | None:
    return shape.canonical(completion)


def _bare_ok(shape: Shape, completion: str) -> bool:
    """The canonical answer and nothing else (surrounding whitespace allowed)."""
    return shape.exact(completion.strip())


def _chat_extract(shape: Shape, completion: str) -> str | None:
    tagged = last_answer_tag(completion)
    return shape.canonical(tagged) if tagged is not None else _boxed_extract(shape, completion)


def _boxed_extract(shape: Shape, completion: str) -> str | None:
    boxed = last_boxed(completion)
    return shape.canonical(boxed) if boxed is not None else shape.last_in(completion)


register_format("bare", prompt=lambda question: question, extract=_bare_extract, format_ok=_bare_ok)
register_format("chat", prompt=lambda text: [{"role": "user", "content": f"{text}\n\n{CHAT_INSTRUCTION}"}],
                extract=_chat_extract, format_ok=lambda shape, completion: chat_format_ok(completion))
register_format("boxed", prompt=lambda text: [{"role": "user", "content": f"{text}\n\n{BOXED_INSTRUCTION}"}],
                extract=_boxed_extract, format_ok=lambda shape, completion: boxed_format_ok(completion))
