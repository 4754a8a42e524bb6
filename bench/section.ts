// The shape every benchmark section returns: a Markdown table, notes under it, and figures for the JSON file.

export interface BenchSection {
  title: string;
  /** Markdown table rows: same keys in every row. */
  rows: Array<Record<string, string | number>>;
  notes: string[];
  /** Machine-readable figures for the JSON file. */
  figures: Record<string, number>;
}
