/**
 * The comma-separated files the risk model reads and writes (RFC 4180: fields may be quoted, a quote inside a
 * quoted field is doubled, lines end in LF or CRLF). Fields stay strings here; the feature code parses them, so an
 * error can name the row and the column.
 */

export interface CsvTable {
  header: string[];
  /** Data rows, each as long as the header. Row 1 is the first line after the header. */
  rows: string[][];
}

/** A problem in the input, located so that a person can find it: data row 1 is the line after the header. */
export class CsvInputError extends Error {
  constructor(
    message: string,
    readonly row: number | null,
    readonly column: string | null,
  ) {
    super(row === null ? message : `row ${row}${column === null ? '' : `, column ${column}`}: ${message}`);
    this.name = 'CsvInputError';
  }
}

function splitRecords(text: string): string[][] {
  const records: string[][] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 1;
        } else quoted = false;
      } else {
        if (char === '\n') line += 1;
        field += char;
      }
    } else if (char === '"') {
      if (field !== '') throw new CsvInputError(`line ${line}: a quote inside an unquoted field`, null, null);
      quoted = true;
    } else if (char === ',') {
      fields.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i += 1;
      fields.push(field);
      records.push(fields);
      fields = [];
      field = '';
      line += 1;
    } else field += char;
  }
  if (quoted) throw new CsvInputError(`line ${line}: a quoted field is not closed`, null, null);
  if (field !== '' || fields.length > 0) {
    fields.push(field);
    records.push(fields);
  }
  return records;
}

/** Parses a whole file. Blank lines are skipped; a row with another number of fields than the header is an error. */
export function parseCsv(text: string): CsvTable {
  const records = splitRecords(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  const header = records[0];
  if (header === undefined) throw new CsvInputError('the file is empty (no header line)', null, null);
  const rows: string[][] = [];
  for (let index = 1; index < records.length; index += 1) {
    const record = records[index] as string[];
    if (record.length === 1 && record[0] === '') continue;
    if (record.length !== header.length) {
      throw new CsvInputError(`has ${record.length} fields, the header has ${header.length}`, rows.length + 1, null);
    }
    rows.push(record);
  }
  return { header, rows };
}

/** The index of a named column; a missing one is an error that names it. */
export function columnIndex(table: CsvTable, name: string): number {
  const index = table.header.indexOf(name);
  if (index < 0) throw new CsvInputError(`the header has no column "${name}"`, null, name);
  return index;
}

/** The index of each named column; a missing one is an error that names it. */
export function columnIndexes<Name extends string>(table: CsvTable, names: readonly Name[]): Record<Name, number> {
  const indexes = {} as Record<Name, number>;
  for (const name of names) indexes[name] = columnIndex(table, name);
  return indexes;
}

function quote(field: string): string {
  return /[",\r\n]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field;
}

export function formatCsv(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [header, ...rows].map((fields) => fields.map(quote).join(',')).join('\n') + '\n';
}
