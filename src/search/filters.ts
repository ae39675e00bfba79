// Metadata filters for search: their shape, the CLI's text syntax, and the SQL they become.
// Keys and values always reach SQL as parameters; keys are first checked against the pipeline's
// metadata list, so a typo is an error rather than a filter that silently matches nothing.

export type FilterValue = string | number | boolean;
export type FilterOp = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte' | 'in';

export type MetadataFilter =
  | { key: string; op: Exclude<FilterOp, 'in'>; value: FilterValue }
  | { key: string; op: 'in'; value: FilterValue[] };

export class FilterError extends Error {
  override name = 'FilterError';
}

export const FILTER_SYNTAX =
  'key=value, key!=value, key<value, key<=value, key>value, key>=value, or "key in a,b,c"';

const COMPARISON = /^([^\s=!<>]+)\s*(!=|<=|>=|=|<|>)\s*(.*)$/s;
const IN_LIST = /^([^\s=!<>]+)\s+in\s+(.+)$/is;
const OPS: Record<string, Exclude<FilterOp, 'in'>> = {
  '=': 'eq',
  '!=': 'ne',
  '<': 'lt',
  '<=': 'lte',
  '>': 'gt',
  '>=': 'gte',
};
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * A value as typed: true/false are booleans, numbers are numbers, anything else is text. Quotes
 * ("150", 'true') force text, for text columns that hold digits or the words true and false.
 */
export function parseValue(raw: string, filter: string): FilterValue {
  const text = raw.trim();
  if (text === '')
    throw new FilterError(`filter "${filter}" has no value (write key="" to match empty text)`);
  const quoted = /^"(.*)"$/s.exec(text) ?? /^'(.*)'$/s.exec(text);
  if (quoted) return quoted[1] ?? '';
  // price<<5 or price=>5 is a slip of the keyboard, not a search for the text "<5".
  if (/^[=<>!]/.test(text))
    throw new FilterError(`cannot read filter "${filter}": write ${FILTER_SYNTAX}`);
  if (text === 'true' || text === 'false') return text === 'true';
  if (NUMBER.test(text)) return Number(text);
  return text;
}

/** Parses one --filter argument. */
export function parseFilter(text: string): MetadataFilter {
  const trimmed = text.trim();
  const list = IN_LIST.exec(trimmed);
  if (list) {
    const [, key = '', items = ''] = list;
    const values = items.split(',').map((item) => parseValue(item, text));
    return { key, op: 'in', value: values };
  }
  const cmp = COMPARISON.exec(trimmed);
  const op = cmp && OPS[cmp[2] ?? ''];
  if (!cmp || !op) throw new FilterError(`cannot read filter "${text}": write ${FILTER_SYNTAX}`);
  const value = parseValue(cmp[3] ?? '', text);
  if (typeof value === 'boolean' && op !== 'eq' && op !== 'ne') {
    throw new FilterError(
      `filter "${text}" orders a boolean: only = and != apply to true and false`,
    );
  }
  return { key: cmp[1] ?? '', op, value };
}

/**
 * Rejects keys the pipeline does not keep as metadata, naming the key and the ones it does keep.
 */
export function checkFilterKeys(
  filters: readonly MetadataFilter[],
  metadata: readonly string[],
  pipeline: string,
): void {
  for (const f of filters) {
    if (!metadata.includes(f.key)) {
      const kept = metadata.length ? `it keeps ${metadata.join(', ')}` : 'it keeps no metadata';
      throw new FilterError(`unknown metadata key "${f.key}" for pipeline ${pipeline}: ${kept}`);
    }
    if (f.op === 'in' && f.value.length === 0)
      throw new FilterError(`filter on "${f.key}" lists no values`);
  }
}

/** A metadata column as its source table declares it (what inspectTable reads). */
export interface MetadataColumn {
  name: string;
  /** As format_type writes it: numeric(10,2), character varying(80), boolean, … */
  type: string;
  typname: string;
  /** pg_type.typcategory: N numeric, B boolean, S string, E enum, … */
  category: string;
}

/** The JSON type a column's values have in metadata, for the types whose values are checked. */
function metadataKind(column: MetadataColumn): 'number' | 'boolean' | 'string' | undefined {
  if (column.category === 'N' && column.typname !== 'money') return 'number'; // money is kept as text
  if (column.category === 'B') return 'boolean';
  if (column.category === 'S' || column.category === 'E') return 'string';
  return undefined; // dates, json, arrays, …: kept in forms too varied to check here
}

/**
 * Why a filter can never match the column it names, or undefined when it can. Metadata keeps
 * numbers as numbers, booleans as booleans and text as text, and a value only matches its own type,
 * so price<=abc or in_stock=yes would otherwise return no results rather than say what is wrong.
 */
export function filterTypeProblem(
  filter: MetadataFilter,
  column: MetadataColumn,
  table: string,
): string | undefined {
  const kind = metadataKind(column);
  const values: FilterValue[] = filter.op === 'in' ? filter.value : [filter.value];
  const wrong = kind === undefined ? undefined : values.find((v) => typeof v !== kind);
  if (kind === undefined || wrong === undefined) return undefined;
  const what = `${filter.key} is ${column.type.replace(/\(.*\)$/, '')} in ${table}`;
  const shown = typeof wrong === 'string' ? `"${wrong}"` : String(wrong);
  if (kind === 'number') return `${what}; ${shown} is not a number`;
  if (kind === 'boolean') return `${what}; ${shown} is not true or false`;
  return `${what}; quote ${shown} to compare it as text ("${String(wrong)}")`;
}

const SQL_OPS: Record<Exclude<FilterOp, 'in'>, string> = {
  eq: '=',
  ne: '<>',
  lt: '<',
  lte: '<=',
  gt: '>',
  gte: '>=',
};

/**
 * SQL conditions on the vector table's metadata column, numbering parameters from `first`. Equality
 * compares jsonb with jsonb, so types must match (150 never equals "150") and numbers compare by
 * value (150 = 150.00). Ordering reads numbers as numeric and text as text; a value of the other
 * type (or none) does not match.
 */
export function filterSql(
  filters: readonly MetadataFilter[],
  first: number,
): { conditions: string[]; params: unknown[] } {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown): string => {
    params.push(value);
    return `$${first + params.length - 1}`;
  };
  for (const f of filters) {
    const key = `${param(f.key)}::text`;
    const field = `metadata -> ${key}`;
    if (f.op === 'in') {
      conditions.push(`${field} = any(${param(f.value.map((v) => JSON.stringify(v)))}::jsonb[])`);
    } else if (f.op === 'eq') {
      conditions.push(`${field} = ${param(JSON.stringify(f.value))}::jsonb`);
    } else if (f.op === 'ne') {
      // A row without the value is not equal to it: kept, as a reader of "!=" expects.
      conditions.push(`${field} is distinct from ${param(JSON.stringify(f.value))}::jsonb`);
    } else if (typeof f.value === 'number') {
      // The case keeps a text value from reaching the cast, which would fail the whole query.
      conditions.push(
        `(case when jsonb_typeof(${field}) = 'number' then (metadata ->> ${key})::numeric end) ${SQL_OPS[f.op]} ${param(f.value)}::numeric`,
      );
    } else {
      conditions.push(
        `(case when jsonb_typeof(${field}) = 'string' then metadata ->> ${key} end) ${SQL_OPS[f.op]} ${param(String(f.value))}::text`,
      );
    }
  }
  return { conditions, params };
}
