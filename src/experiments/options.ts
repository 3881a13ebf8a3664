// Settings shared by the experiments' commands.

/** Folder the experiments write their plots to unless --out says otherwise. */
export const DEFAULT_OUT = "runs/experiments";
