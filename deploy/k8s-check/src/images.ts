/** Image references: "name[:tag][@digest]". */

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
