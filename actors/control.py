"""``ActorRuntimeControl``: ``RuntimeControl`` over the runtime's named actors (used by Serve and the CLI).

Every call has a deadline; an actor that is not there (the runtime is down) or does not answer in
time raises ``RuntimeUnavailable``, which the API turns into a 503. Restart counts come from Ray's
actor table.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import ray

from arbray.runtime.control import RiskCommand, RuntimeUnavailable

CALL_TIMEOUT_S = 10.0
_RAY: Any = ray  # the cluster-state functions (nodes, resources) are untyped


RUNTIME_ACTOR = re.compile(r"^(journal|position_manager|risk_guard|sim_exchange|screener|strategy_\d+|"
                           r"symbol_state_\d+)$")
"""Names of the runtime's actors (Serve's own actors share the cluster, not this list)."""


def actor_table(namespace: str) -> dict[str, dict[str, Any]]:
    """The runtime's named actors in ``namespace`` from Ray's GCS: state, restarts, pid (alive or not)."""
    from ray._private import state as ray_state  # the GCS actor table; needs no dashboard

    out: dict[str, dict[str, Any]] = {}
    for info in ray_state.actors().values():
        name = info.get("Name")
        if not name or not RUNTIME_ACTOR.match(name) or info.get("RayNamespace", namespace) != namespace:
            continue
        prev = out.get(name)
        if prev is not None and prev["state"] == "ALIVE":
            continue  # an older, dead incarnation of a re-created name
        out[name] = {"name": name, "state": info.get("State"), "restarts": int(info.get("NumRestarts") or 0),
                     "pid": (info.get("Address") or {}).get("pid") or info.get("Pid"),
                     "class": info.get("ActorClassName")}
    return out


class ActorRuntimeControl:
    """The running engine's actors, as the control API sees them."""

    def __init__(self, namespace: str = "arbray", timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.namespace = namespace
        self.timeout_s = timeout_s

    def _handle(self, name: str) -> Any:
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError as exc:
            raise RuntimeUnavailable(f"actor {name!r} is not running") from exc

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(getattr(self._handle(name), method).remote(*args), self.timeout_s)
        except TimeoutError as exc:
            raise RuntimeUnavailable(f"{name}.{method} did not answer within {self.timeout_s:g} s") from exc
        except ray.exceptions.RayActorError as exc:
            raise RuntimeUnavailable(f"{name} is restarting: {exc}") from exc

    def _names(self, prefix: str) -> list[str]:
        """Names of the runtime's actors starting with ``prefix``; ``RuntimeUnavailable`` when no runtime runs."""
        names = [n["name"] for n in ray.util.list_named_actors(all_namespaces=True) if n["namespace"] == self.namespace]
        if "position_manager" not in names:
            raise RuntimeUnavailable("the runtime is not running in namespace " + self.namespace)
        return sorted(n for n in names if n.startswith(prefix))

    # ---- RuntimeControl ----------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        table = actor_table(self.namespace)
        if "position_manager" not in table:
            raise RuntimeUnavailable("the runtime is not running in namespace " + self.namespace)
        now = int(time.time() * 1000)
        actors: dict[str, Any] = {}
        names = [n for n in table if n != "api"]

        async def ping(name: str) -> tuple[str, bool]:
            try:
                await asyncio.wait_for(self._handle(name).ready.remote(), 2.0)
                return name, True
            except Exception:
                return name, False
        alive = dict(await asyncio.gather(*(ping(n) for n in names)))
        for n in names:
            actors[n] = {"alive": alive[n], "restarts": table[n]["restarts"], "last_heartbeat_ms": now if alive[n]
                         else None, "state": table[n]["state"]}
        data: dict[str, Any] = {}
        guard_stale = 30_000  # RiskGuardConfig.stale_data_ms default: the readiness rule is the guard's
        for name in self._names("symbol_state_"):
            try:
                health = await self._call(name, "health")
            except RuntimeUnavailable:
                continue
            for sym, h in health.items():
                last = h["last_message_ms"]
                data[sym] = {"last_message_ms": last, "book_state": h["book_state"], "warming_up": h["warming_up"],
                             "fresh": last is not None and now - last <= guard_stale}
        ready = all(a["alive"] for a in actors.values()) and bool(data) and all(d["fresh"] for d in data.values())
        run = await self._run_info()
        return {"ready": ready, "mode": run.get("mode", "unknown"), "started_ms": run.get("started_ms", 0),
                "actors": actors, "data": data, "instance": run.get("instance")}

    async def _run_info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = await self._call("position_manager", "run_info")
            return info
        except (RuntimeUnavailable, AttributeError):
            return {}

    async def stats(self) -> dict[str, Any]:
        pm = await self._call("position_manager", "stats")
        sym = [await self._call(n, "stats") for n in self._names("symbol_state_")]
        journal = await self._call("journal", "stats")
        scores = 0
        for n in self._names("strategy_"):
            scores += (await self._call(n, "stats")).get("scores", 0)
        risk = await self._call("risk_guard", "view")
        rejects: dict[str, int] = {}
        for s in sym:
            for k, v in s["rejects"].items():
                rejects[k] = rejects.get(k, 0) + v
        restarts = sum(a["restarts"] for a in actor_table(self.namespace).values())
        return {"messages": sum(s["messages"] for s in sym), "rejects": rejects,
                "snapshots": sum(s["boundaries"] for s in sym), "scores": scores, "signals": pm.get("signals", 0),
                "orders": pm.get("orders", 0), "fills": pm.get("fills_maker", 0) + pm.get("fills_taker", 0),
                "trades": pm.get("trades", 0), "book_resyncs": sum(s["book_resyncs"] for s in sym),
                "actor_restarts": restarts, "risk_state": risk["state"], "position_manager": pm, "journal": journal,
                "symbol_states": sym}

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for n in self._names("symbol_state_"):
            out.update(await self._call(n, "snapshots"))
        return out

    async def market(self, symbol: str) -> dict[str, Any]:
        for n in self._names("symbol_state_"):
            health = await self._call(n, "health")
            if symbol in health:
                result: dict[str, Any] = await self._call(n, "market", symbol)
                return result
        raise KeyError(symbol)

    async def positions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("position_manager", "positions")
        return result

    async def accounts(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._call("position_manager", "accounts")
        return result

    async def risk(self) -> dict[str, Any]:
        view = await self._call("risk_guard", "view")
        return {**view, "strategies": await self._call("position_manager", "strategy_risk")}

    async def risk_command(self, command: RiskCommand, reason: str, source: str) -> dict[str, Any]:
        await self._call("risk_guard", "command", command, reason, source)
        return await self.risk()

    async def kill_strategy(self, strategy: str, reason: str, source: str) -> dict[str, Any]:
        await self._call("risk_guard", "kill", strategy, reason, source)
        return await self.risk()

    async def reload_strategies(self) -> dict[str, Any]:
        for n in self._names("strategy_"):
            await self._call(n, "reload")
        result: dict[str, Any] = await self._call("position_manager", "reload_strategies")
        return result

    async def add_balance(self, strategy: str, amount: float, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("position_manager", "add_balance", strategy, amount, ref)
        return result

    async def cluster(self) -> dict[str, Any]:
        nodes = [{"node_id": n["NodeID"], "alive": bool(n["Alive"]), "resources": n.get("Resources", {}),
                  "address": n.get("NodeManagerAddress")} for n in _RAY.nodes()]
        resources = {"total": _RAY.cluster_resources(), "available": _RAY.available_resources()}
        return {"nodes": nodes, "resources": resources,
                "actors": sorted(actor_table(self.namespace).values(), key=lambda a: a["name"])}
