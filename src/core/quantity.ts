// Kubernetes resource quantities from the configuration's numbers (cores, bytes, ms): shared by the
// kubernetes driver and `yggdrasil export`.

/** Cores as millicores: 0.5 → "500m". */
export const cpuQuantity = (cores: number): string => `${Math.round(cores * 1000)}m`;
/** Bytes as mebibytes (at least 1): 536870912 → "512Mi". */
export const memoryQuantity = (bytes: number): string =>
  `${Math.max(1, Math.round(bytes / (1024 * 1024)))}Mi`;
