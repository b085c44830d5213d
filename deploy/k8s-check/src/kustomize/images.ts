/** Image references and kustomize's `images:` transformer. */
import { isObject, type Json } from "../json.js";

export interface ImageRef {
  /** Registry and repository, e.g. "registry:5000/recsys/rank". */
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
}

/** Splits "name[:tag][@digest]"; a ":" before the last "/" is a registry port, not a tag. */
export function parseImage(image: string): ImageRef {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  }
  return { name: rest, digest };
}

export function formatImage(ref: ImageRef): string {
  return `${ref.name}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

export interface ImageOverride {
  readonly name: string;
  readonly newName?: string;
  readonly newTag?: string;
  readonly digest?: string;
}

/** kustomize's rule: a new tag or digest replaces both the old tag and digest. */
export function overrideImage(image: string, o: ImageOverride): string {
  const ref = parseImage(image);
  if (ref.name !== o.name) return image;
  let { tag, digest } = ref;
  if (o.newTag !== undefined || o.digest !== undefined) {
    tag = o.newTag;
    digest = o.digest;
  }
  return formatImage({ name: o.newName ?? ref.name, tag, digest });
}

/**
 * Rewrites the `image` of every element of every `containers` and
 * `initContainers` list anywhere in the object (kustomize's image transformer
 * does the same walk, so CronJob templates are covered).
 */
export function applyImages(node: Json, overrides: readonly ImageOverride[]): void {
  if (Array.isArray(node)) {
    for (const item of node) applyImages(item, overrides);
    return;
  }
  if (!isObject(node)) return;
  for (const [key, value] of Object.entries(node)) {
    if ((key === "containers" || key === "initContainers") && Array.isArray(value)) {
      for (const container of value) {
        if (isObject(container) && typeof container.image === "string") {
          for (const o of overrides) container.image = overrideImage(container.image, o);
        }
      }
    }
    applyImages(value, overrides);
  }
}
