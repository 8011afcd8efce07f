# The agent server (`callagent serve`) and the campaign worker (`callagent worker`), one image.
#   docker build -t callagent .
#   docker compose up            # see docker-compose.yml and README "Scaling out"
FROM python:3.11-slim

# Run-time system libraries only: the Python wheels (onnxruntime, moonshine, piper with its
# espeak-ng data, psycopg) bundle their own; libgomp1 is OpenMP for numba's thread pool.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libgomp1 ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 callagent
WORKDIR /app

COPY . .
# speech-gpl: Piper TTS and its espeak-ng data are GPL-3 (README "Licences"). tune: torch
# (its CPU build, from PyTorch's index) and transformers, to tune the sentence encoder.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        -e '.[speech-gpl,tune]'

# Records' journal and spool, SQLite files (if no DATABASE_URL) and derived model files
# (optimised ASR graph, trained intent heads: built at first start, reused after) live on
# a volume, one per container: each process's journal must survive its own restart.
ENV CALLAGENT_DATA_DIR=/data \
    CALLAGENT_CACHE_DIR=/data/cache \
    CALLAGENT_HOST=0.0.0.0 \
    PORT=7860 \
    PYTHONUNBUFFERED=1
# The sentence encoder is tuned to the shipped agents here, not at each container's first
# start: a new named volume starts with the image's /data.
RUN mkdir -p /data && CALLAGENT_CACHE_DIR=/data/cache callagent agent tune bot/agents/*.yaml \
    && chown -R callagent:callagent /data
VOLUME ["/data"]
USER callagent
EXPOSE 7860

# tini forwards SIGTERM to the server so it drains its calls before exiting.
ENTRYPOINT ["tini", "--"]
CMD ["callagent", "serve", "--host", "0.0.0.0", "--port", "7860"]
