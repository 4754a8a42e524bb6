// Prints exported manifests as YAML: the notes first, as comments, then one document per object.
import { stringify } from 'yaml';
import type { Exported } from './manifests.js';

export function renderYaml(e: Exported, header: string): string {
  const notes = [header, ...e.notes].map((n) => `# ${n}`).join('\n');
  const docs = e.documents.map((d) => stringify(d, { lineWidth: 0 }).trimEnd()).join('\n---\n');
  return `${notes}\n---\n${docs}\n`;
}
