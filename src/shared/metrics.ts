// Metrics both roles export about the shared state.
import { Gauge, type Registry } from 'prom-client';

/** yggdrasil_shared_state_up{role}: 1 while this process reaches Redis, 0 while it works from its last view. */
export function sharedStateGauge(registry: Registry, role: 'router' | 'controller', up: () => boolean): void {
  new Gauge({
    name: 'yggdrasil_shared_state_up',
    help: '1 while this process reaches the shared state (Redis), 0 while it works from its last view.',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      this.set({ role }, up() ? 1 : 0);
    },
  });
}
