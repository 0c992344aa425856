"""Knowledge graph batches: entities, then relations, then observations, in the caller's
transaction (``cesar_api.database.write``), so a rejected batch writes nothing.

Relations and observations name their entities by id or by ``(entity_type, name)``; a name
refers to an entity of the same batch or one already stored. The SQL is
:mod:`cesar_core.graph`'s (the worker's ``graph.extract`` step writes through it too).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from cesar_core import graph

from cesar_api.errors import InvalidInput

__all__ = ["EntityRef", "apply_batch"]

EntityRef = dict[str, Any]  # {"id": UUID} or {"entity_type": str, "name": str}


class _Resolver:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.by_name: dict[tuple[str, str], UUID] = {}
        self.known_ids: set[UUID] = set()

    async def __call__(self, ref: EntityRef, where: str) -> UUID:
        if ref.get("id") is not None:
            entity_id: UUID = ref["id"]
            if entity_id not in self.known_ids:
                if await graph.get_entity(self.conn, entity_id) is None:
                    raise InvalidInput(f"{where}: no entity with id {entity_id}")
                self.known_ids.add(entity_id)
            return entity_id
        key = (ref["entity_type"], ref["name"])
        found = self.by_name.get(key) or await graph.find_entity_id(self.conn, *key)
        if found is None:
            raise InvalidInput(
                f"{where}: no entity {key[0]}/{key[1]} (add it under entities in the same batch)"
            )
        self.by_name[key] = found
        return found


async def apply_batch(
    conn: asyncpg.Connection,
    *,
    entities: list[dict[str, Any]],
    relations: list[dict[str, Any]],
    observations: list[dict[str, Any]],
) -> dict[str, Any]:
    resolve = _Resolver(conn)
    entity_rows = []
    for values in entities:
        row = await graph.upsert_entity(conn, **values)
        resolve.by_name[(row["entity_type"], row["name"])] = row["id"]
        resolve.known_ids.add(row["id"])
        entity_rows.append(row)
    relation_rows = []
    for index, values in enumerate(relations):
        source_id = await resolve(values.pop("source"), f"relations[{index}].source")
        target_id = await resolve(values.pop("target"), f"relations[{index}].target")
        if source_id == target_id:
            raise InvalidInput(f"relations[{index}]: source and target are the same entity")
        relation_rows.append(
            await graph.upsert_relation(conn, source_id=source_id, target_id=target_id, **values)
        )
    observation_rows = []
    created = 0
    for index, values in enumerate(observations):
        entity_id = await resolve(values.pop("entity"), f"observations[{index}].entity")
        row, new = await graph.add_observation(conn, entity_id=entity_id, **values)
        created += int(new)
        observation_rows.append(row)
    return {
        "entities": entity_rows,
        "relations": relation_rows,
        "observations": observation_rows,
        "observations_created": created,
    }
