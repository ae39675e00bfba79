// Registering embedsync's search attributes (SEARCH_ATTRIBUTES in names.ts) on a namespace: through
// the operator service by the poller, `dev` and the tests, or as flags of the dev server when it
// starts. Workflows tagged with an attribute the namespace lacks fail to start.
import type { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { SEARCH_ATTRIBUTES } from './names.js';

/** A search attribute that cannot be registered as embedsync needs it; waiting will not help. */
export class SearchAttributeError extends Error {
  override name = 'SearchAttributeError';
  constructor(
    message: string,
    readonly namespace: string,
    readonly attribute: string,
  ) {
    super(message);
  }
}

/** How `temporal server start-dev --search-attribute Name=Type` spells each type. */
const CLI_TYPE_NAMES: Readonly<Record<SearchAttributeType, string>> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** `--search-attribute EmbedPipeline=Keyword …`: the dev server registers them as it starts. */
export const searchAttributeFlags = (): string[] =>
  SEARCH_ATTRIBUTES.flatMap((key) => [
    '--search-attribute',
    `${key.name}=${CLI_TYPE_NAMES[key.type]}`,
  ]);

/** Whether a namespace's custom search attributes include all of embedsync's. */
export const hasSearchAttributes = (customAttributes: Readonly<Record<string, unknown>>): boolean =>
  SEARCH_ATTRIBUTES.every((key) => key.name in customAttributes);

/**
 * Registers embedsync's search attributes on a namespace where they are missing; returns the ones
 * added.
 */
export async function ensureSearchAttributes(
  connection: Pick<Connection, 'operatorService'>,
  namespace: string,
): Promise<string[]> {
  const listed = await connection.operatorService.listSearchAttributes({ namespace });
  const existing = { ...listed.systemAttributes, ...listed.customAttributes };
  const searchAttributes: Record<
    string,
    NonNullable<ReturnType<typeof encodeSearchAttributeIndexedValueType>>
  > = {};
  for (const { name, type } of SEARCH_ATTRIBUTES) {
    const want = encodeSearchAttributeIndexedValueType(type);
    const have = existing[name];
    if (want === undefined)
      throw new SearchAttributeError(`unknown search attribute type ${type}`, namespace, name);
    if (have === undefined) searchAttributes[name] = want;
    else if (have !== want)
      throw new SearchAttributeError(
        `search attribute ${name} on namespace ${namespace} has another type than ${type}; it cannot be changed in place`,
        namespace,
        name,
      );
  }
  const missing = Object.keys(searchAttributes);
  if (missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    // ALREADY_EXISTS: another process registered them first.
    if ((err as { code?: number }).code !== 6) throw err;
  }
  return missing;
}
