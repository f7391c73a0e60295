/** Test data shaped exactly as GET /api/strategies answers (the shipped strategies' own schemas and defaults). */
import type { Strategy } from "../api/agents";

export const STRATEGIES: Strategy[] = [
  {
    "name": "short_strangle",
    "title": "NIFTY short strangle",
    "description": "Sells a NIFTY weekly OTM call and put picked by Black-Scholes delta at the entry time, guards each with a stop, moves the stops to breakeven and then into profit as the premium decays, re-enters a stopped side, and squares off before the close.",
    "params_schema": {
      "$defs": {
        "StopLossPct": {
          "description": "The stop's distance above the entry fill, in percent of the fill, by weekday.",
          "properties": {
            "mon": {
              "default": 30.0,
              "description": "Stop loss on Mondays, % above the entry fill.",
              "maximum": 200,
              "minimum": 1,
              "title": "Mon",
              "type": "number"
            },
            "tue": {
              "default": 30.0,
              "description": "Stop loss on Tuesdays, % above the entry fill.",
              "maximum": 200,
              "minimum": 1,
              "title": "Tue",
              "type": "number"
            },
            "wed": {
              "default": 30.0,
              "description": "Stop loss on Wednesdays, % above the entry fill.",
              "maximum": 200,
              "minimum": 1,
              "title": "Wed",
              "type": "number"
            },
            "thu": {
              "default": 30.0,
              "description": "Stop loss on Thursdays, % above the entry fill.",
              "maximum": 200,
              "minimum": 1,
              "title": "Thu",
              "type": "number"
            },
            "fri": {
              "default": 30.0,
              "description": "Stop loss on Fridays, % above the entry fill.",
              "maximum": 200,
              "minimum": 1,
              "title": "Fri",
              "type": "number"
            }
          },
          "title": "StopLossPct",
          "type": "object"
        }
      },
      "properties": {
        "call_lots": {
          "default": 1,
          "description": "Lots of the call sold; quantity is lots x the lot size.",
          "maximum": 50,
          "minimum": 1,
          "title": "Call Lots",
          "type": "integer"
        },
        "put_lots": {
          "default": 1,
          "description": "Lots of the put sold; quantity is lots x the lot size.",
          "maximum": 50,
          "minimum": 1,
          "title": "Put Lots",
          "type": "integer"
        },
        "entry_time": {
          "default": "09:40:00",
          "description": "When the strangle is first sold (IST).",
          "format": "time",
          "formatMaximum": "15:30:00",
          "formatMinimum": "09:15:00",
          "title": "Entry Time",
          "type": "string"
        },
        "entry_deadline": {
          "default": "10:30:00",
          "description": "Until when the first entry is retried while no pair qualifies (IST).",
          "format": "time",
          "formatMaximum": "15:30:00",
          "formatMinimum": "09:15:00",
          "title": "Entry Deadline",
          "type": "string"
        },
        "last_reentry_time": {
          "default": "14:45:00",
          "description": "No re-entry after a stop is sent after this time (IST).",
          "format": "time",
          "formatMaximum": "15:30:00",
          "formatMinimum": "09:15:00",
          "title": "Last Reentry Time",
          "type": "string"
        },
        "square_off_time": {
          "default": "15:15:00",
          "description": "When open stops are cancelled and every open leg is bought back (IST); keep it before the broker's 15:20 MIS square-off.",
          "format": "time",
          "formatMaximum": "15:30:00",
          "formatMinimum": "09:15:00",
          "title": "Square Off Time",
          "type": "string"
        },
        "min_days_to_expiry": {
          "default": 2,
          "description": "Use the next weekly expiry when fewer trading days than this remain.",
          "maximum": 5,
          "minimum": 0,
          "title": "Min Days To Expiry",
          "type": "integer"
        },
        "strike_window": {
          "default": 500,
          "description": "Strikes considered: ATM ± this many points.",
          "maximum": 2000,
          "minimum": 50,
          "title": "Strike Window",
          "type": "integer"
        },
        "delta_low": {
          "default": 0.29,
          "description": "Lowest |delta| a sold strike may have.",
          "maximum": 0.5,
          "minimum": 0.01,
          "title": "Delta Low",
          "type": "number"
        },
        "delta_high": {
          "default": 0.36,
          "description": "Highest |delta| a sold strike may have.",
          "maximum": 0.5,
          "minimum": 0.01,
          "title": "Delta High",
          "type": "number"
        },
        "risk_free_rate": {
          "default": 5.0,
          "description": "Risk-free rate for Black-Scholes, % a year.",
          "maximum": 20,
          "minimum": 0,
          "title": "Risk Free Rate",
          "type": "number"
        },
        "max_price_diff_pct": {
          "default": 1.5,
          "description": "Largest |call - put| / max(call, put) of the pair sold, in %.",
          "maximum": 100,
          "minimum": 0,
          "title": "Max Price Diff Pct",
          "type": "number"
        },
        "stop_loss_pct": {
          "$ref": "#/$defs/StopLossPct",
          "description": "Stop trigger above the entry fill, % by weekday."
        },
        "stop_limit_buffer_pct": {
          "default": 5.0,
          "description": "A stop's limit price sits this many % above its trigger, room to fill in a spike.",
          "maximum": 50,
          "minimum": 0,
          "title": "Stop Limit Buffer Pct",
          "type": "number"
        },
        "first_profit_points": {
          "default": 32.0,
          "description": "Combined premium decay (points per unit) that moves both stops to breakeven.",
          "exclusiveMinimum": 0,
          "maximum": 1000,
          "title": "First Profit Points",
          "type": "number"
        },
        "second_profit_points": {
          "default": 40.0,
          "description": "Combined premium decay (points per unit) that moves both stops to entry - lock points.",
          "exclusiveMinimum": 0,
          "maximum": 1000,
          "title": "Second Profit Points",
          "type": "number"
        },
        "lock_points": {
          "default": 10.0,
          "description": "Profit locked per unit at the second step (points below entry).",
          "maximum": 1000,
          "minimum": 0,
          "title": "Lock Points",
          "type": "number"
        },
        "max_stop_loss_reentries": {
          "default": 6,
          "description": "Re-entries after a stop, at most, per day (both sides together).",
          "maximum": 20,
          "minimum": 0,
          "title": "Max Stop Loss Reentries",
          "type": "integer"
        }
      },
      "title": "StrangleParams",
      "type": "object"
    },
    "defaults": {
      "call_lots": 1,
      "put_lots": 1,
      "entry_time": "09:40:00",
      "entry_deadline": "10:30:00",
      "last_reentry_time": "14:45:00",
      "square_off_time": "15:15:00",
      "min_days_to_expiry": 2,
      "strike_window": 500,
      "delta_low": 0.29,
      "delta_high": 0.36,
      "risk_free_rate": 5.0,
      "max_price_diff_pct": 1.5,
      "stop_loss_pct": {
        "mon": 30.0,
        "tue": 30.0,
        "wed": 30.0,
        "thu": 30.0,
        "fri": 30.0
      },
      "stop_limit_buffer_pct": 5.0,
      "first_profit_points": 32.0,
      "second_profit_points": 40.0,
      "lock_points": 10.0,
      "max_stop_loss_reentries": 6
    },
    "lot_size": 75
  },
  {
    "name": "sma_crossover",
    "title": "SMA crossover",
    "description": "Buys an NSE equity when its fast moving average of minute closes crosses above the slow one and sells when it crosses back below; one position at most, squared off before the close.",
    "params_schema": {
      "properties": {
        "tradingsymbol": {
          "default": "RELIANCE",
          "description": "The NSE equity traded, as the broker spells it (e.g. RELIANCE).",
          "maxLength": 32,
          "minLength": 1,
          "pattern": "^[A-Z0-9&_-]+$",
          "title": "Tradingsymbol",
          "type": "string"
        },
        "exchange": {
          "const": "NSE",
          "default": "NSE",
          "description": "Exchange of the equity.",
          "title": "Exchange",
          "type": "string"
        },
        "fast": {
          "default": 5,
          "description": "Minutes in the fast moving average.",
          "maximum": 100,
          "minimum": 2,
          "title": "Fast",
          "type": "integer"
        },
        "slow": {
          "default": 20,
          "description": "Minutes in the slow moving average.",
          "maximum": 200,
          "minimum": 3,
          "title": "Slow",
          "type": "integer"
        },
        "lots": {
          "default": 1,
          "description": "Lots bought on a cross up; quantity is lots x the lot size (1 share).",
          "maximum": 50,
          "minimum": 1,
          "title": "Lots",
          "type": "integer"
        },
        "square_off_time": {
          "default": "15:15:00",
          "description": "When a position still open is sold and the agent is done for the day (IST).",
          "format": "time",
          "formatMaximum": "15:30:00",
          "formatMinimum": "09:15:00",
          "title": "Square Off Time",
          "type": "string"
        }
      },
      "title": "SmaParams",
      "type": "object"
    },
    "defaults": {
      "tradingsymbol": "RELIANCE",
      "exchange": "NSE",
      "fast": 5,
      "slow": 20,
      "lots": 1,
      "square_off_time": "15:15:00"
    },
    "lot_size": 1
  }
]
;
