// Public surface of nbd/: the NBD server, the export interface it serves, and a Volume as an export.

export type { NbdExport, NbdExtent, NbdMetaContextSource } from './export';
export { NbdServer, type NbdServerOptions, type NbdConnectionInfo, type NbdListenTarget, type NbdListening } from './server';
export { volumeNbdExport, type VolumeNbdExportOptions } from './volume-export';
export { nbdRequestBytesDefault, nbdRequestBytesMax, baseAllocation } from './protocol';
