"""The policy engine: `signoff.yaml` (people, roles, schedules, escalation chains, policies).

* `config`: schema, loader with file:line errors, reference and quorum checks;
* `cel`: policy conditions in CEL; `shifts`: shift coverage (pure); `roster`: who gets a role's
  request at an instant (gap policy, delegation);
* `router`: matching and tightening, the lifecycle's `Router`; `escalation`: chains on durable
  timers; `notifier`: the `request.notified` events;
* `controlmap`: coverage, gaps and quorum satisfiability per role; `engine`: the wiring.
"""
