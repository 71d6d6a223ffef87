"""LLM backends and what the LLM reasoner needs from them (ARCHITECTURE §5).

`types` holds tracehound's own message, tool and completion types; no vendor SDK type
crosses this package's boundary. `backend` defines the `Backend` interface and the
entry-point registry (`tracehound.llm_backends`).
"""
