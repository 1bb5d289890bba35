spoke_script_test(test_cli_errors python3 ${CMAKE_CURRENT_LIST_DIR}/test_cli_errors.py LABELS integration TIMEOUT 120)
