/** Query hooks for strategies, their parameters and this user's agents. */
import {
  useInfiniteQuery,
  useMutation,
  useQueries,
  useQuery,
  useQueryClient,
  type QueryClient,
} from "@tanstack/react-query";
import { api, call, type Schemas } from "./client";

export type Agent = Schemas["AgentRead"];
export type AgentEvent = Schemas["EventRead"];
export type Strategy = Schemas["StrategyRead"];
export type ParamChange = Schemas["ParamChangeRead"];
/** A strategy's parameter set, as the API stores and returns it (JSON values). */
export type ParamValues = Record<string, unknown>;

export const agentKeys = {
  list: ["agents", "list"] as const,
  strategies: ["agents", "strategies"] as const,
  allEvents: ["agents", "events"] as const,
  events: (id: number) => ["agents", "events", id] as const,
  params: (strategy: string) => ["agents", "params", strategy] as const,
  history: (strategy: string) => ["agents", "history", strategy] as const,
};

/**
 * This user's agents, newest first. Status changes arrive over the live stream; `refreshWhileLiveMs` reads
 * the list again that often while an agent is live, for its heartbeat (which the stream does not carry).
 */
export function useAgents(options: { refreshWhileLiveMs?: number } = {}) {
  const every = options.refreshWhileLiveMs;
  return useQuery({
    queryKey: agentKeys.list,
    queryFn: () => call(api.GET("/api/agents")),
    refetchInterval: (query) =>
      every !== undefined && (query.state.data ?? []).some((a) => LIVE_STATES.has(a.state)) ? every : false,
  });
}

export const LIVE_STATES: ReadonlySet<Agent["state"]> = new Set(["starting", "running", "paused", "stopping"]);

/**
 * The newer of two views of one agent. An agent never comes back from stopped or failed (starting again makes
 * a new agent), so a late "stopping" answer does not undo a "stopped" the live stream has already told.
 */
export function newerAgent(known: Agent | undefined, incoming: Agent): Agent {
  if (known !== undefined && !LIVE_STATES.has(known.state) && LIVE_STATES.has(incoming.state)) return known;
  return incoming;
}

/** Puts an agent's new status into the cached list (newest first) and its own entry. */
export function putAgent(queryClient: QueryClient, agent: Agent): void {
  queryClient.setQueryData<Agent[]>(agentKeys.list, (list) => {
    if (list === undefined) return list;
    const at = list.findIndex((a) => a.id === agent.id);
    if (at < 0) return [agent, ...list].sort((a, b) => b.id - a.id);
    const merged = newerAgent(list[at], agent);
    if (merged === list[at]) return list;
    const next = list.slice();
    next[at] = merged;
    return next;
  });
}

export function useStrategies() {
  return useQuery({
    queryKey: agentKeys.strategies,
    queryFn: () => call(api.GET("/api/strategies")),
    staleTime: 5 * 60_000,
  });
}

function fetchParams(strategy: string): Promise<ParamValues> {
  return call(api.GET("/api/strategies/{name}/params", { params: { path: { name: strategy } } }));
}

export function useStrategyParams(strategy: string | null) {
  return useQuery({
    queryKey: agentKeys.params(strategy ?? ""),
    queryFn: () => fetchParams(strategy ?? ""),
    enabled: strategy !== null && strategy !== "",
  });
}

/** PUT the whole parameter set; the answer is the set now in force. */
export function useSaveParams(strategy: string) {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (values: ParamValues) =>
      call(api.PUT("/api/strategies/{name}/params", { params: { path: { name: strategy } }, body: values })),
    onSuccess: (saved) => {
      queryClient.setQueryData(agentKeys.params(strategy), saved);
      void queryClient.invalidateQueries({ queryKey: agentKeys.history(strategy) });
    },
  });
}

export const HISTORY_PAGE = 20;

/** The parameter change history, newest first, a page at a time (`after` = the last id seen). */
export function useParamsHistory(strategy: string | null) {
  return useInfiniteQuery({
    queryKey: agentKeys.history(strategy ?? ""),
    enabled: strategy !== null && strategy !== "",
    initialPageParam: undefined as number | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/strategies/{name}/params/history", {
          params: { path: { name: strategy ?? "" }, query: { after: pageParam, limit: HISTORY_PAGE } },
        }),
      ),
    getNextPageParam: (last) => (last.length >= HISTORY_PAGE ? last[last.length - 1]?.id : undefined),
  });
}

/**
 * Start an agent with the user's current parameters and the lots chosen here. The parameters are read again
 * just before, so a change saved from another device is not overwritten by what this page loaded earlier.
 */
export function useStartAgent() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async ({ strategy, lots }: { strategy: string; lots: Record<string, number> }) => {
      const current = await queryClient.fetchQuery({
        queryKey: agentKeys.params(strategy),
        queryFn: () => fetchParams(strategy),
        staleTime: 0,
      });
      return call(api.POST("/api/agents", { body: { strategy, params: { ...current, ...lots } } }));
    },
    onSuccess: (agent, { strategy }) => {
      putAgent(queryClient, agent);
      void queryClient.invalidateQueries({ queryKey: agentKeys.params(strategy) });
      void queryClient.invalidateQueries({ queryKey: agentKeys.history(strategy) });
    },
  });
}

export function useStopAgent() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (id: number) => call(api.POST("/api/agents/{agent_id}/stop", { params: { path: { agent_id: id } } })),
    onSuccess: (agent) => putAgent(queryClient, agent),
  });
}

/** The kill switch: every agent of the user stopped, its orders cancelled and positions squared off. */
export function useStopAll() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: () => call(api.POST("/api/agents/stop-all")),
    onSettled: () => queryClient.invalidateQueries({ queryKey: agentKeys.list }),
  });
}

export const EVENTS_BACKFILL = 100;

/** The latest events of each given agent (newest first per agent), so a console is not empty after a reload. */
export function useAgentEventsBackfill(ids: readonly number[]) {
  return useQueries({
    queries: ids.map((id) => ({
      queryKey: agentKeys.events(id),
      queryFn: () =>
        call(
          api.GET("/api/agents/{agent_id}/events", {
            params: { path: { agent_id: id }, query: { limit: EVENTS_BACKFILL } },
          }),
        ),
      // Live events arrive over the stream; the backfill is fetched again only after a gap.
      staleTime: Infinity,
      refetchOnWindowFocus: false,
    })),
  });
}
