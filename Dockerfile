# One image for the API, the agent worker and kitesim; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir .
COPY alembic.ini ./
COPY alembic ./alembic
RUN useradd --system --uid 10001 tradedesk
USER tradedesk
EXPOSE 8000
CMD ["python", "-m", "tradedesk", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
