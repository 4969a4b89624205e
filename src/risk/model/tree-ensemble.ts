/**
 * Boosted trees as the artifact stores them and as both the trainer and the scorer evaluate them. Every node,
 * inner or leaf, carries the value the tree would give if it stopped there; the prediction is the leaf's value,
 * and the difference between a child's value and its parent's is what the parent's feature contributed (Saabas's
 * path attribution), so the contributions along the path add up exactly to the leaf value minus the root value.
 */

/** One tree in parallel arrays; node 0 is the root. A leaf has feature -1 and children -1. */
export interface TreeArrays {
  feature: number[];
  /** Goes left when the feature's value is at most the threshold. */
  threshold: number[];
  left: number[];
  right: number[];
  /** Margin (log-odds) the node stands for, learning rate included. */
  value: number[];
  /** Sum of the training rows' hessians (weighted) that reached the node. */
  cover: number[];
}

/** All trees flattened into typed arrays, for speed: a single scoring walks a few hundred nodes. */
export class TreeEnsemble {
  readonly featureCount: number;
  readonly baseMargin: number;
  private readonly roots: Int32Array;
  private readonly feature: Int32Array;
  private readonly threshold: Float64Array;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly value: Float64Array;

  constructor(baseMargin: number, trees: readonly TreeArrays[], featureCount: number) {
    this.baseMargin = baseMargin;
    this.featureCount = featureCount;
    const total = trees.reduce((sum, tree) => sum + tree.feature.length, 0);
    this.roots = new Int32Array(trees.length);
    this.feature = new Int32Array(total);
    this.threshold = new Float64Array(total);
    this.left = new Int32Array(total);
    this.right = new Int32Array(total);
    this.value = new Float64Array(total);
    let offset = 0;
    trees.forEach((tree, t) => {
      this.roots[t] = offset;
      const size = tree.feature.length;
      for (let node = 0; node < size; node += 1) {
        const feature = tree.feature[node] as number;
        if (feature >= featureCount) throw new Error(`tree ${t} node ${node}: feature ${feature} is out of range`);
        const isLeaf = feature < 0;
        const left = tree.left[node] as number;
        const right = tree.right[node] as number;
        // Children come after their parent, so every walk ends and no node is shared between trees.
        if (!isLeaf && !(left > node && left < size && right > node && right < size)) {
          throw new Error(`tree ${t} node ${node}: children must follow their parent inside the tree`);
        }
        this.feature[offset + node] = feature;
        this.threshold[offset + node] = tree.threshold[node] as number;
        this.left[offset + node] = isLeaf ? -1 : offset + left;
        this.right[offset + node] = isLeaf ? -1 : offset + right;
        this.value[offset + node] = tree.value[node] as number;
      }
      offset += size;
    });
  }

  get treeCount(): number {
    return this.roots.length;
  }

  /** The log-odds: base, then each tree's leaf in order (the trainer adds them in the same order, bit for bit). */
  margin(x: ArrayLike<number>): number {
    let margin = this.baseMargin;
    for (let t = 0; t < this.roots.length; t += 1) {
      let node = this.roots[t] as number;
      let feature = this.feature[node] as number;
      while (feature >= 0) {
        node = (x[feature] as number) <= (this.threshold[node] as number) ? (this.left[node] as number) : (this.right[node] as number);
        feature = this.feature[node] as number;
      }
      margin += this.value[node] as number;
    }
    return margin;
  }

  /**
   * Per-feature contributions to the margin, and the bias (base plus every root's value): bias plus the sum of the
   * contributions equals `margin(x)` up to rounding.
   */
  contributions(x: ArrayLike<number>): { bias: number; perFeature: Float64Array } {
    const perFeature = new Float64Array(this.featureCount);
    let bias = this.baseMargin;
    for (let t = 0; t < this.roots.length; t += 1) {
      let node = this.roots[t] as number;
      bias += this.value[node] as number;
      let feature = this.feature[node] as number;
      while (feature >= 0) {
        const child = (x[feature] as number) <= (this.threshold[node] as number) ? (this.left[node] as number) : (this.right[node] as number);
        perFeature[feature] = (perFeature[feature] as number) + (this.value[child] as number) - (this.value[node] as number);
        node = child;
        feature = this.feature[node] as number;
      }
    }
    return { bias, perFeature };
  }
}
