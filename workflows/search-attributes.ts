/**
 * Typed search attributes that make releases findable in the Temporal UI and `list`.
 * They must be registered in the namespace (`npm run stack` does it for the dev server; see
 * the README for `temporal operator search-attribute create` on a real cluster).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA = {
  release: defineSearchAttributeKey('HrRelease', SearchAttributeType.KEYWORD),
  app: defineSearchAttributeKey('HrApp', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('HrPhase', SearchAttributeType.KEYWORD),
  imageTag: defineSearchAttributeKey('HrImageTag', SearchAttributeType.KEYWORD),
  cookbookConstraint: defineSearchAttributeKey('HrCookbookConstraint', SearchAttributeType.KEYWORD),
} as const;

export const SEARCH_ATTRIBUTE_NAMES = Object.values(SA).map((k) => k.name);

/** One running release per app: the workflow id is derived from the app. */
export const workflowIdFor = (app: string) => `release-${app}`;

export const TASK_QUEUE = 'hybrid-release';
