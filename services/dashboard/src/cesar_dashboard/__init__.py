"""CESAR dashboard: Streamlit ops console"""
