/**
 * The model file as text: indented JSON for people, except that each tree is one line, so that the file stays
 * readable and diffs of a retrained model stay small. Numbers print in JavaScript's shortest round-trip form,
 * so the scorer reads back exactly the trainer's values.
 */
import type { ModelArtifact } from './artifact.ts';

export function formatArtifact(artifact: ModelArtifact): string {
  const marker = '"@trees@"';
  const text = JSON.stringify({ ...artifact, model: { baseMargin: artifact.model.baseMargin, trees: '@trees@' } }, null, 2);
  const trees = artifact.model.trees.map((tree) => `      ${JSON.stringify(tree)}`).join(',\n');
  return `${text.replace(marker, () => `[\n${trees}\n    ]`)}\n`;
}
