FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e .
EXPOSE 5000
CMD ["helpdesk", "web", "--host", "0.0.0.0", "--port", "5000"]
