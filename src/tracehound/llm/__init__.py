"""LLM backends and what the LLM reasoner needs from them (ARCHITECTURE §5).

`types` holds tracehound's own message, tool and completion types; no vendor SDK type
crosses this package's boundary. `backend` defines the `Backend` interface and the
entry-point registry (`tracehound.llm_backends`). `openai_http` and `replay` are the
built-in backends, `textcalls` recovers tool calls and JSON written as text, `config`
resolves settings (flags > environment > config file), and `session` is the layer every
caller uses: concurrency limit, budget, accounting and validated JSON answers.
"""
