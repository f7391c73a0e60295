/** Live broker positions, refreshed every few seconds while the page is visible; a failed poll keeps the last figures. */
import type { PageProps } from "../App";
import { POSITIONS_REFRESH_MS, usePositions, type Position } from "../api/trading";
import { formatInr, formatPnl, formatTime, pnlClass, toNumber } from "../lib/format";
import { Empty, ErrorState, Loading } from "../ui/states";
import "./Positions.css";

function PositionRow({ position }: { position: Position }) {
  return (
    <tr>
      <th scope="row">
        {position.tradingsymbol} <span className="muted">{position.exchange}</span>
      </th>
      <td>{position.product}</td>
      <td className={`num ${position.quantity < 0 ? "neg" : ""}`}>
        {position.quantity < 0 ? `\u2212${-position.quantity}` : position.quantity}
      </td>
      <td className="num">{formatInr(position.average_price)}</td>
      <td className="num">{formatInr(position.last_price)}</td>
      <td className={`num ${pnlClass(position.realised)}`}>{formatPnl(position.realised)}</td>
      <td className={`num ${pnlClass(position.unrealised)}`}>{formatPnl(position.unrealised)}</td>
      <td className={`num ${pnlClass(position.pnl)}`}>{formatPnl(position.pnl)}</td>
    </tr>
  );
}

export default function Positions(_props: PageProps) {
  const positions = usePositions();
  const { data } = positions;
  const updated = positions.dataUpdatedAt > 0 ? formatTime(new Date(positions.dataUpdatedAt).toISOString()) : null;

  const header = (
    <div className="positions-head">
      <h1>Positions</h1>
      <div className="positions-refresh">
        <span className="muted" data-testid="positions-updated" aria-live="off">
          {updated !== null ? `Last updated ${updated} IST` : "Not loaded yet"}
          {` · refreshes every ${POSITIONS_REFRESH_MS / 1000} s`}
        </span>
        <button
          type="button"
          className="ghost"
          onClick={() => void positions.refetch()}
          disabled={positions.isFetching}
          aria-busy={positions.isFetching}
        >
          {positions.isFetching ? "Refreshing…" : "Refresh"}
        </button>
      </div>
    </div>
  );

  if (positions.isPending) {
    return (
      <div className="positions-page">
        {header}
        <Loading label="Loading positions from the broker…" />
      </div>
    );
  }

  return (
    <div className="positions-page">
      {header}
      {positions.isError && (
        <ErrorState
          title={data === undefined ? "Could not load positions." : "Could not refresh positions; showing the last figures."}
          error={positions.error}
          onRetry={() => void positions.refetch()}
        />
      )}
      {data !== undefined && (
        <>
          <div className="tiles">
            <div className="tile">
              <div className="label">Total P&L</div>
              <div className={`value ${pnlClass(data.total_pnl)}`} data-testid="positions-total-pnl">
                {formatPnl(data.total_pnl)}
              </div>
            </div>
            <div className="tile">
              <div className="label">Unrealised</div>
              <div className={`value ${pnlClass(data.unrealised_pnl)}`} data-testid="positions-unrealised-pnl">
                {formatPnl(data.unrealised_pnl)}
              </div>
            </div>
            <div className="tile">
              <div className="label">Open positions</div>
              <div className="value" data-testid="positions-open-count">
                {data.items.filter((p) => p.quantity !== 0).length}
              </div>
            </div>
          </div>
          {data.items.length === 0 ? (
            <Empty>No positions today.</Empty>
          ) : (
            <div className="table-wrap card">
              <table aria-label="Positions" data-testid="positions-table">
                <thead>
                  <tr>
                    <th scope="col">Instrument</th>
                    <th scope="col">Product</th>
                    <th scope="col" className="num">
                      Qty
                    </th>
                    <th scope="col" className="num">
                      Avg price
                    </th>
                    <th scope="col" className="num">
                      Last price
                    </th>
                    <th scope="col" className="num">
                      Realised
                    </th>
                    <th scope="col" className="num">
                      Unrealised
                    </th>
                    <th scope="col" className="num">
                      P&L
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.items.map((position) => (
                    <PositionRow
                      key={`${position.exchange}:${position.tradingsymbol}:${position.product}`}
                      position={position}
                    />
                  ))}
                </tbody>
                <tfoot>
                  <tr>
                    <th scope="row" colSpan={5}>
                      Total
                    </th>
                    <td className={`num ${pnlClass(sumRealised(data.items))}`}>{formatPnl(sumRealised(data.items))}</td>
                    <td className={`num ${pnlClass(data.unrealised_pnl)}`}>{formatPnl(data.unrealised_pnl)}</td>
                    <td className={`num ${pnlClass(data.total_pnl)}`} data-testid="positions-total-row">
                      {formatPnl(data.total_pnl)}
                    </td>
                  </tr>
                </tfoot>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}

function sumRealised(items: readonly Position[]): number {
  return items.reduce((paise, p) => paise + Math.round(toNumber(p.realised) * 100), 0) / 100;
}
