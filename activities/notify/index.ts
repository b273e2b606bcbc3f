/** Notification activities, registered with the worker by name. */
export { notify } from './webhook.ts';
export type { ReleaseEvent, NotifyInput, NotifyResult } from './webhook.ts';
export type { WebhookRef } from '../gates/types.ts';
