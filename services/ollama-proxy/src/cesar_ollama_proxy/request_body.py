"""What the proxy accepts in a JSON request body, checked before anything else uses it.

The body must be a JSON object that survives a round trip to UTF-8 (a lone surrogate escape
such as ``"\\ud800"`` parses in Python but breaks every later encode: cache keys, logs, the
database), and its ``model``, when given, must look like an Ollama model name: the name is
logged, labels metrics, names rate-limit keys in Redis and rows of ``llm_cache_metrics``, so it
is bounded and limited to the characters model names use.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cesar_ollama_proxy.errors import InvalidRequest

__all__ = ["MAX_MODEL_NAME", "model_name", "parse_object"]

#: Ollama's longest parts (host, namespace, model, tag) fit well within this
MAX_MODEL_NAME = 256
# [host[:port]/][namespace/]model[:tag][@digest]: letters, digits and . _ - : / @
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@-]*+")
# a \uD800-\uDFFF escape (lone or paired); only then is the round trip worth checking
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (empty body: ``{}``), or :class:`InvalidRequest`."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError (bytes that are not UTF-8)
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidRequest("the request body is not valid JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body) is not None:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(
                "the request body is not valid JSON: a \\u escape is a lone surrogate "
                "(not a character)"
            ) from exc
    return data


def model_name(payload: dict[str, Any]) -> str:
    """The body's ``model`` ("" when absent or empty, left for Ollama to answer), or
    :class:`InvalidRequest` naming the rule (never echoing the value)."""
    model = payload.get("model")
    if model is None or model == "":
        return ""
    if not isinstance(model, str):
        raise InvalidRequest("model must be a string")
    if len(model) > MAX_MODEL_NAME:
        raise InvalidRequest(f"model name is longer than {MAX_MODEL_NAME} characters")
    if _MODEL_NAME.fullmatch(model) is None:
        raise InvalidRequest(
            "model name may only contain letters, digits and . _ - : / @ "
            "(and must start with a letter, digit or _)"
        )
    return model
