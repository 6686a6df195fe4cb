// The data files of an exported TRL job, in a format Hugging Face `datasets` loads directly:
//
//   jsonl    one JSON object per line; train.py: load_dataset("json", data_files=...)
//   parquet  Apache Parquet (hyparquet-writer); train.py: load_dataset("parquet", data_files=...)
//
// The Parquet columns carry the types `datasets` gives the same rows read from JSON Lines (its
// Arrow schema), so TRL sees the same dataset either way:
//   strings                 → BYTE_ARRAY / UTF8 (Arrow string)
//   numbers                 → DOUBLE (float64), INT64 when every value is an integer (int64)
//   booleans                → BOOLEAN
//   lists of numbers        → LIST<INT64 | DOUBLE> (e.g. PPO's input_ids)
//   lists of strings        → LIST<UTF8>
//   conversations           → LIST<STRUCT<role: UTF8, content: UTF8, …>> (TRL's conversational
//                             columns: a list of {role, content} messages)
// in the standard three-level LIST layout (column / list / element) that pyarrow writes. Anything
// else (nested objects in a message, mixed types in a column) is refused naming the column and
// row rather than written in a form `datasets` would read differently.

import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';

/** The writer's own schema element type (hyparquet-writer pins its hyparquet). */
type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];

/** The job's data file formats, with the `datasets` loader train.py passes to load_dataset. */
export const JOB_DATA_FORMATS = {
  jsonl: { ext: 'jsonl', loader: 'json' },
  parquet: { ext: 'parquet', loader: 'parquet' },
} as const;
export type JobDataFormat = keyof typeof JOB_DATA_FORMATS;

export function checkJobDataFormat(v: string): JobDataFormat {
  if (!(v in JOB_DATA_FORMATS)) throw new Error(`export-job: --data-format ${v} is not supported (${Object.keys(JOB_DATA_FORMATS).join(', ')})`);
  return v as JobDataFormat;
}

function writeJsonl(path: string, rows: readonly object[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

type Leaf = 'STRING' | 'INT64' | 'DOUBLE' | 'BOOLEAN';
type ColumnType = { kind: 'leaf'; leaf: Leaf } | { kind: 'list'; leaf: Leaf } | { kind: 'messages'; fields: string[] };

function leafOf(values: readonly unknown[], where: (i: number) => string): Leaf {
  let type: Leaf | null = null;
  values.forEach((v, i) => {
    const t: Leaf | null = typeof v === 'string' ? 'STRING' : typeof v === 'boolean' ? 'BOOLEAN'
      : typeof v === 'number' && Number.isFinite(v) ? (Number.isInteger(v) ? 'INT64' : 'DOUBLE') : null;
    if (t === null) throw new Error(`parquet: ${where(i)}: ${JSON.stringify(v)} is not a string, finite number or boolean`);
    if (type === null || type === t) type = t;
    else if ((type === 'INT64' && t === 'DOUBLE') || (type === 'DOUBLE' && t === 'INT64')) type = 'DOUBLE';
    else throw new Error(`parquet: ${where(i)}: a ${t.toLowerCase()} in a column of ${type.toLowerCase()} values`);
  });
  return type ?? 'STRING';
}

/** The column's type over all rows (the type `datasets` infers from the same JSON Lines). */
function columnType(name: string, values: readonly unknown[]): ColumnType {
  const where = (i: number): string => `column "${name}", row ${i + 1}`;
  const arrays = values.filter((v) => Array.isArray(v)).length;
  if (arrays === 0) return { kind: 'leaf', leaf: leafOf(values, where) };
  if (arrays !== values.length) throw new Error(`parquet: column "${name}" mixes lists and single values (row ${values.findIndex((v) => !Array.isArray(v)) + 1})`);
  const items = (values as unknown[][]).flatMap((v, i) => v.map((x) => ({ x, i })));
  const objects = items.filter(({ x }) => typeof x === 'object' && x !== null && !Array.isArray(x));
  if (objects.length === 0) return { kind: 'list', leaf: leafOf(items.map(({ x }) => x), (k) => where(items[k]!.i)) };
  if (objects.length !== items.length) throw new Error(`parquet: column "${name}" mixes messages and plain values (row ${items.find(({ x }) => typeof x !== 'object' || x === null)!.i + 1})`);
  const fields: string[] = [];
  for (const { x, i } of objects) {
    for (const [k, v] of Object.entries(x as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new Error(`parquet: ${where(i)}: message field "${k}" is ${JSON.stringify(v)}, not a string (write --data-format jsonl for such messages)`);
      if (!fields.includes(k)) fields.push(k);
    }
  }
  return { kind: 'messages', fields };
}

const leafSchema = (name: string, leaf: Leaf): SchemaElement => {
  const base = { name, repetition_type: 'OPTIONAL' as const };
  if (leaf === 'STRING') return { ...base, type: 'BYTE_ARRAY', converted_type: 'UTF8' };
  return { ...base, type: leaf };
};

/** Rows (objects with the same keys) → one Parquet file's bytes, columns in the first row's key order. */
export function parquetBytes(rows: readonly object[]): Uint8Array {
  if (rows.length === 0) throw new Error('parquet: no rows to write');
  const names = Object.keys(rows[0]!);
  rows.forEach((r, i) => {
    const keys = Object.keys(r);
    if (keys.length !== names.length || keys.some((k) => !names.includes(k))) throw new Error(`parquet: row ${i + 1} has columns ${keys.join(', ')}, the first row ${names.join(', ')}`);
  });
  const schema: SchemaElement[] = [{ name: 'root', num_children: names.length }];
  const columnData = names.map((name) => {
    const values = rows.map((r) => (r as Record<string, unknown>)[name]);
    const t = columnType(name, values);
    const toInt = (v: unknown): unknown => (typeof v === 'number' ? BigInt(v) : v);
    if (t.kind === 'leaf') {
      schema.push(leafSchema(name, t.leaf));
      return { name, data: t.leaf === 'INT64' ? values.map(toInt) : values };
    }
    schema.push({ name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 }, { name: 'list', repetition_type: 'REPEATED', num_children: 1 });
    if (t.kind === 'list') {
      schema.push(leafSchema('element', t.leaf));
      return { name, data: t.leaf === 'INT64' ? values.map((v) => (v as unknown[]).map(toInt)) : values };
    }
    schema.push({ name: 'element', repetition_type: 'OPTIONAL', num_children: t.fields.length }, ...t.fields.map((f) => leafSchema(f, 'STRING')));
    return { name, data: values };
  });
  const buf = parquetWriteBuffer({ columnData, schema, codec: 'SNAPPY', createdBy: 'dpo-ts export-job (hyparquet-writer)' });
  return new Uint8Array(buf);
}

/** Writes the rows as `format` to `path` (the path's extension is the caller's). */
export function writeJobData(path: string, rows: readonly object[], format: JobDataFormat): void {
  if (format === 'jsonl') return writeJsonl(path, rows);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, parquetBytes(rows));
}
