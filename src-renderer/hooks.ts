// Data hooks: the overview polled, the event log streamed, a bitmap refreshed live.

import { useEffect, useRef, useState } from 'react';
import type { BitmapDto, EngineEventDto, MapKind, OverviewDto } from '../src-main/console-api';
import { ApiError, consoleApi } from './api';

export function usePolling<T>(
  load: () => Promise<T>,
  intervalMs: number,
  deps: readonly unknown[],
): { data: T | undefined; error: ApiError | undefined; refresh: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (!cancelled) {
          setData(value);
          setError(undefined);
        }
      } catch (e) {
        if (!cancelled) setError(e instanceof ApiError ? e : new ApiError({ code: 'INTERNAL', message: String(e), hint: 'reload the console' }));
      }
      if (!cancelled) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [intervalMs, tick, ...deps]);
  return { data, error, refresh: () => setTick((t) => t + 1) };
}

export function useOverview() {
  return usePolling<OverviewDto>(() => consoleApi().request('overview', {}), 1000, []);
}

export function useBitmap(pair: string, which: MapKind, intervalMs = 100) {
  return usePolling<BitmapDto>(() => consoleApi().request('bitmap', { pair, which }), intervalMs, [pair, which]);
}

const eventsKept = 5000;

export function useEvents(): { events: EngineEventDto[]; error: ApiError | undefined } {
  const [events, setEvents] = useState<EngineEventDto[]>([]);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    const api = consoleApi();
    let lastId = 0;
    const append = (more: EngineEventDto[]) => {
      const fresh = more.filter((e) => e.id > lastId);
      if (fresh.length === 0) return;
      lastId = fresh[fresh.length - 1]!.id;
      setEvents((old) => [...old, ...fresh].slice(-eventsKept));
    };
    const unsubscribe = api.onEvent((event) => append([event]));
    api.request('events', { afterId: 0 }).then(append, (e: unknown) => setError(e as ApiError));
    return unsubscribe;
  }, []);
  return { events, error };
}
