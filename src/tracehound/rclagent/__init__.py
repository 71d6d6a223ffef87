"""rclagent: multi-agent recursion-of-thought root-cause localization (ARCHITECTURE §4.2).

After RCLAgent (Zhang et al., 2025/2026): anomalous requests are selected (`select`), each
becomes a bounded trace graph (`graph`), one agent per span verifies its own state with
typed tools (`tools`, `agents`), reports are consolidated bottom-up, and a synthesis
(`synthesis`) ranks services and instances across requests. Agents reason through the
`Reasoner` interface (`reasoner`); `rules` is the deterministic default.
"""

from tracehound.rclagent.method import RclAgentMethod

__all__ = ["RclAgentMethod"]
