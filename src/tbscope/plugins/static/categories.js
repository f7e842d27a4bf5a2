// Where a profiled step's time goes, as the Profile tab's Overview splits it (tbscope.profiler.overview's
// CATEGORIES), and each category's colour: in every view of the Profile tab and in the offline report.

export const CATEGORIES = ["kernel", "memcpy", "memset", "communication", "runtime", "dataloader", "cpu_exec", "other"];
export const COLORS = {
  kernel: "#1f77b4", memcpy: "#ff7f0e", memset: "#bcbd22", communication: "#d62728",
  runtime: "#9467bd", dataloader: "#8c564b", cpu_exec: "#2ca02c", other: "#a0a0a0",
};
