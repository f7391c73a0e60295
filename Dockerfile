# One image for the API, the agent worker, kitesim and the SPA's server; docker-compose.yml picks the command.
FROM node:20-slim AS spa
WORKDIR /spa
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
RUN npm run build

FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir .
COPY alembic.ini ./
COPY alembic ./alembic
COPY --from=spa /spa/dist ./frontend/dist
RUN useradd --system --uid 10001 tradedesk
USER tradedesk
EXPOSE 8000
CMD ["python", "-m", "tradedesk", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
