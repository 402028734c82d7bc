// Data hooks: the overview polled, the event log streamed, a bitmap refreshed live.

import { useEffect, useRef, useState } from 'react';
import type { BitmapDto, EngineEventDto, MapKind, OverviewDto, ReplicationViewDto } from '../src-main/console-api';
import { consoleApi, toApiError, type ApiError } from './api';

/**
 * Loads now and again every `intervalMs` after each load settles. With `whileVisible`, a
 * hidden page (another tab, a minimised window) skips its turns until it is shown again.
 */
export function usePolling<T>(
  load: () => Promise<T>,
  intervalMs: number,
  deps: readonly unknown[],
  options: { whileVisible?: boolean } = {},
): { data: T | undefined; error: ApiError | undefined; refresh: () => void } {
  const whileVisible = options.whileVisible ?? false;
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (whileVisible && document.visibilityState === 'hidden') {
        timer = setTimeout(() => void run(), intervalMs);
        return;
      }
      try {
        const value = await loadRef.current();
        if (!cancelled) {
          setData(value);
          setError(undefined);
        }
      } catch (e) {
        if (!cancelled) setError(toApiError(e));
      }
      if (!cancelled) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [intervalMs, whileVisible, tick, ...deps]);
  return { data, error, refresh: () => setTick((t) => t + 1) };
}

/**
 * Runs engine requests for a view: the last error (or none after a success) to show in
 * context, and `after` once each request settles (a refresh, say).
 */
export function useAction(after: () => void): { act: (work: () => Promise<unknown>) => Promise<void>; error: ApiError | undefined } {
  const [error, setError] = useState<ApiError>();
  const act = async (work: () => Promise<unknown>) => {
    try {
      await work();
      setError(undefined);
    } catch (e) {
      setError(toApiError(e));
    }
    after();
  };
  return { act, error };
}

export function useOverview() {
  return usePolling<OverviewDto>(() => consoleApi().request('overview', {}), 1000, []);
}

export function useBitmap(pair: string, which: MapKind, intervalMs = 100) {
  return usePolling<BitmapDto>(() => consoleApi().request('bitmap', { pair, which }), intervalMs, [pair, which]);
}

/** The replication panel's view of a pair, at ~2 Hz while the page is shown. */
export function useReplicationView(pair: string, intervalMs = 500) {
  return usePolling<ReplicationViewDto>(() => consoleApi().request('replicationState', { pair }), intervalMs, [pair], { whileVisible: true });
}

const eventsKept = 5000;

export function useEvents(): { events: EngineEventDto[]; error: ApiError | undefined } {
  const [events, setEvents] = useState<EngineEventDto[]>([]);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    const api = consoleApi();
    let cancelled = false;
    // Merge by id: a push may arrive before the initial list, and effects may run twice.
    const merge = (more: EngineEventDto[]) => {
      if (cancelled || more.length === 0) return;
      setEvents((old) => {
        const byId = new Map(old.map((e) => [e.id, e]));
        for (const e of more) byId.set(e.id, e);
        return [...byId.values()].sort((a, b) => a.id - b.id).slice(-eventsKept);
      });
    };
    const unsubscribe = api.onEvent((event) => merge([event]));
    api.request('events', { afterId: 0 }).then(merge, (e: unknown) => !cancelled && setError(toApiError(e)));
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, []);
  return { events, error };
}
