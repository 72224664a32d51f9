# The image of the compose file's `gateway` service (`rtctl gateway`), built from this checkout:
#   docker build -t rtctl-gateway .
FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rtctl ./rtctl
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --no-create-home rtctl
USER rtctl
WORKDIR /tmp
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["rtctl"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8080"]
