// Public surface of store/: durable metadata records.

export { defineRecord, readRecord, requireRecord, writeRecord, type RecordKind } from './json-store';
