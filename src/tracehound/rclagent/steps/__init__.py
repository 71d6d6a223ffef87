"""rclagent on runs of LLM multi-agent systems: which agent, which step.

A run is a trace whose spans are the agents' steps (`run`); step agents verify each step
with tools over its text (`tools`), the rule reasoner (`rules`) scores them, and the
engine (`engine`) consolidates along the chain and ranks agents and steps.
"""

from tracehound.rclagent.steps.engine import StepReasoner, investigate_run
from tracehound.rclagent.steps.rules import StepRuleReasoner, StepWeights
from tracehound.rclagent.steps.run import AGENT_RUN, KIND_ATTRIBUTE, is_agent_run

__all__ = [
    "AGENT_RUN",
    "KIND_ATTRIBUTE",
    "StepReasoner",
    "StepRuleReasoner",
    "StepWeights",
    "investigate_run",
    "is_agent_run",
]
