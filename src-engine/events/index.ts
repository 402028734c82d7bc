// Public surface of events/: the engine event log.

export { EventLog, type EngineEvent, type EventInput, type Severity } from './event-log';
