"""The Agent2Agent protocol (official ``a2a-sdk``) on top of the job system.

Every registered agent has an agent card at ``/a2a/agents/{agent_id}/.well-known/agent-card.json``
and a JSON-RPC endpoint at ``/a2a/agents/{agent_id}``. A message to an agent becomes an
``a2a.task`` job (the task id is the job id) and its state follows the job's; messages are
stored in ``a2a_conversations`` / ``a2a_messages`` (the context id is the conversation id).
"""
