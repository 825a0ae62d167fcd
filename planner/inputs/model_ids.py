"""Which model a manifest serves: its id read from the URI people write, or a guess said aloud.

A model id is *read* when something names it: the ``vramfit.io/model`` annotation, an
``hf://org/name`` URI (``:revision`` or ``@revision`` dropped), or a storage path whose last
folder is the Hugging Face cache layout ``models--org--name`` (``/snapshots/<revision>`` may
follow) or ``org--name`` (Hugging Face repository names never hold ``--``). Such an id is looked
up in the model catalog exactly, case-insensitively, a quantisation suffix allowed
(``...-FP8``); an id the catalog does not know is unknown, never sized from a similar name.

Anything else is a *guess*, tried in this order: an LLMInferenceService's served name
(``spec.model.name``) the catalog knows, a catalog model found somewhere in the path
(``s3://bucket/llama-3.1-8b-instruct/``), the served name when it reads ``org/name``, and,
failing all, the path itself. A guess is used, and its
``guessed_from`` says what it came from so the plan can say so. The URI rules and the exact
catalog match are the core's (``placement.model_ids``), which the node agent uses to publish
KServe's cached models under the same ids. Sizing then follows the core's rules
(``placement.models.size_model``). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from placement.demand import A_MODEL
from placement.model_ids import catalog_entry, model_id_in_uri
from placement.models import (
    Headroom,
    ModelCatalog,
    ModelInfo,
    Sizing,
    lookup,
    model_id_from_uri,
    size_model,
)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """The model a component serves: its id, the catalog entry (``None``: unknown), the text
    the catalog found it by, and what the id was guessed from ("": it was read, not guessed)."""

    model_id: str
    info: ModelInfo | None = None
    matched: str = ""
    guessed_from: str = ""


def identify(
    catalog: ModelCatalog, annotations: Mapping[str, str], uri: str, served_name: str = ""
) -> ModelRef:
    """The model a component serves, from its annotations, storage URI and served name. Pure."""
    named = annotations.get(A_MODEL, "").strip()
    for text in (named, model_id_in_uri(uri) or ""):
        if text:
            info = catalog_entry(catalog, text)
            return ModelRef(info.model_id if info else text, info, text if info else "")
    if served_name and "/" in served_name:
        info = catalog_entry(catalog, served_name)
        if info is not None:
            return ModelRef(info.model_id, info, served_name, f"spec.model.name {served_name}")
    info = lookup(catalog, uri) if uri.strip() else None
    if info is not None:
        return ModelRef(info.model_id, info, uri, uri)
    if served_name and "/" in served_name:
        return ModelRef(served_name, None, "", f"spec.model.name {served_name}")
    if not uri.strip():
        return ModelRef("")
    return ModelRef(model_id_from_uri(uri), None, "", uri)


def size(
    annotations: Mapping[str, str],
    ref: ModelRef,
    shards: int,
    headroom: Headroom,
    catalog: ModelCatalog,
) -> Sizing:
    """Size ``ref``'s model split ``shards`` ways with the core's rules: the size annotations
    win, then the catalog entry ``ref`` found. Raises ``ValueError`` for an invalid
    annotation."""
    given = {k: v for k, v in annotations.items() if k != A_MODEL}
    if ref.info is not None:
        given[A_MODEL] = ref.matched
    sized = size_model(given, "", shards, headroom, catalog)
    return replace(sized, model_id=ref.model_id)
