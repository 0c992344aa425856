"""CESAR API: health, metrics, data, jobs, workflows, live events"""
